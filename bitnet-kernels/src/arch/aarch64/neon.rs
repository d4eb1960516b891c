//! NEON kernels (placeholder tables: scalar entries until specialised).
use crate::arch::scalar;
use crate::dispatch::{Isa, Table};

pub(crate) static TABLE: Table = Table {
    isa: Isa::Neon,
    quantize_row_i8: scalar::quantize_row_i8,
    gemm_i2s: scalar::gemm_i2s,
    gemm_tl: super::lut::gemm_tl_neon,
    f16_to_f32: super::float::f16_to_f32_neon,
    f32_to_f16: super::float::f32_to_f16_neon,
    rms_norm: super::float::rms_norm_neon,
    softmax: super::float::softmax_neon,
    rope_neox: super::float::rope_neox_neon,
    rope_interleaved: super::float::rope_interleaved_neon,
    dot_f32: super::float::dot_f32_neon,
    dot_f16: super::float::dot_f16_neon,
    axpy_f32: super::float::axpy_f32_neon,
    axpy_f16: super::float::axpy_f16_neon,
    gemv_f16: super::float::gemv_f16_neon,
    gemv_q8_0: super::float::gemv_q8_0_neon,
};

pub(crate) static TABLE_DOTPROD: Table = Table {
    isa: Isa::NeonDotprod,
    gemm_tl: super::lut::gemm_tl_neon,
    ..TABLE
};
