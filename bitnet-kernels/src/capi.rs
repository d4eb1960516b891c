//! C ABI over the dispatched kernels (feature `capi`); the declarations are
//! in `include/bitnet_kernels.h`. Every function validates its arguments and
//! returns a status code instead of unwinding across the boundary.

use crate::format::{I2sMatrix, WeightScale};
use crate::{Dispatch, Error, QuantizedActs};
use core::ffi::c_char;
use core::slice;

/// Status codes; keep in sync with `bitnet_status` in the header.
const OK: i32 = 0;
const NULL_POINTER: i32 = 1;
const BAD_LENGTH: i32 = 2;
const BAD_K: i32 = 3;
const BAD_ROWS: i32 = 4;
const BAD_SCALE: i32 = 5;
const BAD_CODE: i32 = 6;
const UNSUPPORTED: i32 = 7;

fn status(e: Error) -> i32 {
    match e {
        Error::BufferLength { .. } | Error::ZeroDim { .. } => BAD_LENGTH,
        Error::KNotMultiple { .. } => BAD_K,
        Error::RowRange { .. } => BAD_ROWS,
        Error::BadScale { .. } => BAD_SCALE,
        Error::BadCode { .. } => BAD_CODE,
        Error::IsaUnavailable { .. } | Error::UnknownIsa => UNSUPPORTED,
    }
}

/// A slice from a C pointer, or `None` for a null pointer with a non-zero length.
///
/// # Safety
/// A non-null `ptr` must be valid for `len` reads.
unsafe fn view<'a, T>(ptr: *const T, len: usize) -> Option<&'a [T]> {
    match (ptr.is_null(), len) {
        (_, 0) => Some(&[]),
        (true, _) => None,
        // SAFETY: non-null and valid for `len` reads per the caller.
        (false, _) => Some(unsafe { slice::from_raw_parts(ptr, len) }),
    }
}

/// # Safety
/// A non-null `ptr` must be valid for `len` writes and unaliased.
unsafe fn view_mut<'a, T>(ptr: *mut T, len: usize) -> Option<&'a mut [T]> {
    match (ptr.is_null(), len) {
        (_, 0) => Some(&mut []),
        (true, _) => None,
        // SAFETY: non-null, valid and unaliased for `len` writes per the caller.
        (false, _) => Some(unsafe { slice::from_raw_parts_mut(ptr, len) }),
    }
}

/// The name of the kernel path in use (`"avx512"`, …), NUL-terminated, static.
#[no_mangle]
pub extern "C" fn bitnet_kernels_isa() -> *const c_char {
    let name: &'static [u8] = match Dispatch::detect().isa() {
        crate::Isa::Scalar => b"scalar\0",
        crate::Isa::Avx2 => b"avx2\0",
        crate::Isa::Avx512 => b"avx512\0",
        crate::Isa::Neon => b"neon\0",
        crate::Isa::NeonDotprod => b"neon-dotprod\0",
    };
    name.as_ptr().cast()
}

/// Quantizes `n` rows of `k` floats (`x`, row-major) to int8 `q` (`n·k`),
/// writing one scale and one sum per row.
///
/// # Safety
/// Pointers must be valid for the lengths given; outputs must not alias inputs.
#[no_mangle]
pub unsafe extern "C" fn bitnet_quantize_i8(
    x: *const f32,
    n: usize,
    k: usize,
    q: *mut i8,
    scales: *mut f32,
    sums: *mut i32,
) -> i32 {
    let Some(len) = n.checked_mul(k) else {
        return BAD_LENGTH;
    };
    // SAFETY: the caller vouches for the pointers and lengths.
    let (x, q, scales, sums) = unsafe {
        (
            view(x, len),
            view_mut(q, len),
            view_mut(scales, n),
            view_mut(sums, n),
        )
    };
    let (Some(x), Some(q), Some(scales), Some(sums)) = (x, q, scales, sums) else {
        return NULL_POINTER;
    };
    match Dispatch::detect().quantize(x, k, q, scales, sums) {
        Ok(_) => OK,
        Err(e) => status(e),
    }
}

/// `y[t·m + r] = (Σ_k trit(r,k)·q[t·k + k']) / (act_scales[t] · (1 / w_scale))` for
/// `t < n` and `row_start ≤ r < row_end`. `codes` are `m·k/4` I2_S bytes;
/// `y` is the whole `n × m` output (only the row range is written).
///
/// # Safety
/// Pointers must be valid for the lengths given; `y` must not alias inputs.
#[no_mangle]
pub unsafe extern "C" fn bitnet_gemm_i2s(
    codes: *const u8,
    m: usize,
    k: usize,
    w_scale: f32,
    q: *const i8,
    act_scales: *const f32,
    act_sums: *const i32,
    n: usize,
    row_start: usize,
    row_end: usize,
    y: *mut f32,
) -> i32 {
    let (Some(code_len), Some(q_len), Some(y_len)) =
        (m.checked_mul(k / 4), n.checked_mul(k), n.checked_mul(m))
    else {
        return BAD_LENGTH;
    };
    // SAFETY: the caller vouches for the pointers and lengths.
    let views = unsafe {
        (
            view(codes, code_len),
            view(q, q_len),
            view(act_scales, n),
            view(act_sums, n),
            view_mut(y, y_len),
        )
    };
    let (Some(codes), Some(q), Some(scales), Some(sums), Some(y)) = views else {
        return NULL_POINTER;
    };
    let mut run = || -> Result<(), Error> {
        let w = I2sMatrix::new(codes, m, k, WeightScale::Tensor(w_scale))?;
        let x = QuantizedActs::new(q, scales, sums, k)?;
        Dispatch::detect().gemm_i2s(&w, &x, row_start..row_end, y)
    };
    match run() {
        Ok(()) => OK,
        Err(e) => status(e),
    }
}

/// A static, NUL-terminated description of a status code.
#[no_mangle]
pub extern "C" fn bitnet_status_message(code: i32) -> *const c_char {
    let msg: &'static [u8] = match code {
        OK => b"ok\0",
        NULL_POINTER => b"a pointer is null but its length is not zero\0",
        BAD_LENGTH => b"a length is zero or does not match the shape\0",
        BAD_K => b"k is not a multiple of the format's block (128 for I2_S)\0",
        BAD_ROWS => b"the row range is not within 0..m\0",
        BAD_SCALE => b"a scale is not finite\0",
        BAD_CODE => b"a weight code is invalid\0",
        UNSUPPORTED => b"the kernel path asked for is not available on this CPU\0",
        _ => b"unknown status code\0",
    };
    msg.as_ptr().cast()
}
