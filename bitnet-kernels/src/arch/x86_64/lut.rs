//! x86 lookup-table kernels (placeholder: scalar until specialised).
pub(crate) use crate::arch::lut::{gemm_tl as gemm_tl_avx2, gemm_tl as gemm_tl_avx512};
