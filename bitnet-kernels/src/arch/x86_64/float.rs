//! x86 float helpers (placeholder: scalar until specialised).
pub(crate) use crate::arch::scalar::{
    axpy_f16 as axpy_f16_avx2, axpy_f16 as axpy_f16_avx512, axpy_f32 as axpy_f32_avx2,
    axpy_f32 as axpy_f32_avx512, dot_f16 as dot_f16_avx2, dot_f16 as dot_f16_avx512,
    dot_f32 as dot_f32_avx2, dot_f32 as dot_f32_avx512, f16_to_f32 as f16_to_f32_avx2,
    f16_to_f32 as f16_to_f32_avx512, f32_to_f16 as f32_to_f16_avx2,
    f32_to_f16 as f32_to_f16_avx512, gemv_f16 as gemv_f16_avx2, gemv_f16 as gemv_f16_avx512,
    gemv_q8_0 as gemv_q8_0_avx2, gemv_q8_0 as gemv_q8_0_avx512, rms_norm as rms_norm_avx2,
    rms_norm as rms_norm_avx512, rope_interleaved as rope_interleaved_avx2,
    rope_interleaved as rope_interleaved_avx512, rope_neox as rope_neox_avx2,
    rope_neox as rope_neox_avx512, softmax as softmax_avx2, softmax as softmax_avx512,
};
