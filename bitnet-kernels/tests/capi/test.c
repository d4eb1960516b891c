/* Exercises the C ABI against a dot product written out in C. */
#include "bitnet_kernels.h"
#include <stdio.h>
#include <string.h>

#define M 37
#define K 256
#define N 3

static int fail(const char *what) {
    fprintf(stderr, "capi test failed: %s\n", what);
    return 1;
}

int main(void) {
    static int8_t trits[M][K];
    static uint8_t codes[M * K / 4];
    static float x[N * K], scales[N], y[N * M];
    static int8_t q[N * K];
    static int32_t sums[N];
    uint32_t seed = 12345;

    for (int r = 0; r < M; r++)
        for (int c = 0; c < K; c++) {
            seed = seed * 1103515245u + 12345u;
            trits[r][c] = (int8_t)((seed >> 16) % 3) - 1;
        }
    /* I2_S: per 128-block, byte j holds weights j, j+32, j+64, j+96 in bits 7:6 .. 1:0. */
    for (int r = 0; r < M; r++)
        for (int b = 0; b < K / 128; b++)
            for (int j = 0; j < 32; j++) {
                uint8_t byte = 0;
                for (int g = 0; g < 4; g++)
                    byte |= (uint8_t)(trits[r][b * 128 + j + 32 * g] + 1) << (6 - 2 * g);
                codes[r * K / 4 + b * 32 + j] = byte;
            }
    for (int i = 0; i < N * K; i++) x[i] = (float)((i * 37) % 101 - 50) / 7.0f;

    printf("isa: %s\n", bitnet_kernels_isa());
    if (bitnet_quantize_i8(x, N, K, q, scales, sums) != BITNET_OK) return fail("quantize");
    memset(y, 0, sizeof y);
    if (bitnet_gemm_i2s(codes, M, K, 0.25f, q, scales, sums, N, 0, M, y) != BITNET_OK) return fail("gemm");
    for (int t = 0; t < N; t++)
        for (int r = 0; r < M; r++) {
            int32_t dot = 0;
            for (int c = 0; c < K; c++) dot += trits[r][c] * q[t * K + c];
            float want = (float)dot / (scales[t] * (1.0f / 0.25f));
            if (memcmp(&want, &y[t * M + r], sizeof want) != 0) return fail("gemm value");
        }
    if (bitnet_gemm_i2s(codes, M, 100, 0.25f, q, scales, sums, N, 0, M, y) != BITNET_BAD_K) return fail("bad k");
    if (bitnet_gemm_i2s(codes, M, K, 0.25f, q, scales, sums, N, 0, M + 1, y) != BITNET_BAD_ROWS) return fail("bad rows");
    if (bitnet_gemm_i2s(NULL, M, K, 0.25f, q, scales, sums, N, 0, M, y) != BITNET_NULL_POINTER) return fail("null");
    if (strcmp(bitnet_status_message(BITNET_BAD_K), "ok") == 0) return fail("message");
    printf("capi: 3 passed, 0 failed\n");
    return 0;
}
