//! AVX-512 kernels (placeholder table: scalar entries until specialised).
use crate::arch::scalar;
use crate::dispatch::{Isa, Table};

pub(crate) static TABLE: Table = Table {
    isa: Isa::Avx512,
    quantize_row_i8: scalar::quantize_row_i8,
    gemm_i2s: scalar::gemm_i2s,
    gemm_tl: super::lut::gemm_tl_avx512,
    f16_to_f32: super::float::f16_to_f32_avx512,
    f32_to_f16: super::float::f32_to_f16_avx512,
    rms_norm: super::float::rms_norm_avx512,
    softmax: super::float::softmax_avx512,
    rope_neox: super::float::rope_neox_avx512,
    rope_interleaved: super::float::rope_interleaved_avx512,
    dot_f32: super::float::dot_f32_avx512,
    dot_f16: super::float::dot_f16_avx512,
    axpy_f32: super::float::axpy_f32_avx512,
    axpy_f16: super::float::axpy_f16_avx512,
    gemv_f16: super::float::gemv_f16_avx512,
    gemv_q8_0: super::float::gemv_q8_0_avx512,
};
