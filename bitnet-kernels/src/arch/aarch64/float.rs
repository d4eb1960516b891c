//! NEON float helpers (placeholder: scalar until specialised).
pub(crate) use crate::arch::scalar::{
    axpy_f16 as axpy_f16_neon, axpy_f32 as axpy_f32_neon, dot_f16 as dot_f16_neon,
    dot_f32 as dot_f32_neon, f16_to_f32 as f16_to_f32_neon, f32_to_f16 as f32_to_f16_neon,
    gemv_f16 as gemv_f16_neon, gemv_q8_0 as gemv_q8_0_neon, rms_norm as rms_norm_neon,
    rope_interleaved as rope_interleaved_neon, rope_neox as rope_neox_neon,
    softmax as softmax_neon,
};
