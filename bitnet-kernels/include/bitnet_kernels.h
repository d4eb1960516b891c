/* C ABI of bitnet-kernels (Rust crate, feature "capi").
 *
 * Ternary (BitNet b1.58) matmul with per-token int8 activations, on the
 * best kernel path of the CPU (BITNET_KERNEL=scalar|avx2|avx512|neon|
 * neon-dotprod forces one). Every function returns a bitnet_status; none
 * allocates or keeps pointers after it returns. Thread-safe.
 */
#ifndef BITNET_KERNELS_H
#define BITNET_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum bitnet_status {
    BITNET_OK = 0,
    BITNET_NULL_POINTER = 1, /* a pointer is NULL but its length is not 0 */
    BITNET_BAD_LENGTH = 2,   /* a length is 0 or does not match the shape */
    BITNET_BAD_K = 3,        /* k is not a multiple of 128 */
    BITNET_BAD_ROWS = 4,     /* row range not within 0..m */
    BITNET_BAD_SCALE = 5,    /* a scale is NaN or infinite */
    BITNET_BAD_CODE = 6,     /* an invalid ternary code */
    BITNET_UNSUPPORTED = 7   /* the forced kernel path is not available */
};

/* Name of the kernel path in use, e.g. "avx512". Static storage. */
const char *bitnet_kernels_isa(void);

/* Static description of a status code. */
const char *bitnet_status_message(int32_t status);

/* Quantize n rows of k floats (row-major) to int8:
 * scale[t] = 127 / max(max|x_t|, 1e-5), q = round_half_even(x * scale)
 * clamped to [-128, 127], sums[t] = sum of row t of q. */
int32_t bitnet_quantize_i8(const float *x, size_t n, size_t k,
                           int8_t *q, float *scales, int32_t *sums);

/* Y[n x m] = X[n x k] * W^T for rows row_start..row_end of W:
 * codes: m*k/4 bytes of I2_S codes (bitnet.cpp x86 layout, k % 128 == 0),
 * w_scale: the tensor's f32 scale; q, act_scales, act_sums as written by
 * bitnet_quantize_i8; y = dot / (act_scale * (1 / w_scale)); y: the whole n*m output, row-major (only the given
 * row range of each token row is written). Exact integer dot; equal bit for
 * bit on every kernel path. */
int32_t bitnet_gemm_i2s(const uint8_t *codes, size_t m, size_t k, float w_scale,
                        const int8_t *q, const float *act_scales,
                        const int32_t *act_sums, size_t n,
                        size_t row_start, size_t row_end, float *y);

#ifdef __cplusplus
}
#endif

#endif /* BITNET_KERNELS_H */
