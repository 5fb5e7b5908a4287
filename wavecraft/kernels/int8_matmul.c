/* Weight-only int8 matrix product for decoding: y[m, o] = scale[o] * sum_i x[m, i] * q[o, i] (+ bias[o])
 * for one to four rows of fp32 activations x [M, K], int8 weights q [N, K] (row-major), fp32 scales [N]
 * (rows beyond two go by pairs over each block of weights, which the first pair leaves in L1).
 *
 * Decoding streams every weight from memory once per step, so what matters is keeping the memory
 * busy: each thread walks four weight rows at once (four independent streams) and prefetches the
 * block it will read next. Two ways to multiply (`pieces`):
 *   0: fp32 activations and sums (K % 16 == 0). Each 16 weights cost a widening, a conversion and
 *      the FMAs: 15-18 GB/s of weights on the 2-core development machine.
 *   2: (AVX512-VNNI, K % 64 == 0) each activation row is split into two int8 pieces,
 *      x ~ s1 * a1 + s2 * a2 with s1 = max|x| / 127 and s2 = s1 / 254, so it keeps ~15 bits (error
 *      at most max|x| / 64,500, against bfloat16's 8 bits in PyTorch's weight-only kernel), and
 *      `vpdpbusd` multiplies 64 weights by 4 bytes of activations per instruction into int32 sums:
 *      fewer instructions per weight byte, 15-20 % faster. The instruction takes unsigned bytes, so
 *      a piece is stored as a + 128 and 128 times the row's weight sum (one more `vpdpbusd`, against
 *      ones) is taken off. */
#include <stdint.h>
#include <immintrin.h>
#include <omp.h>
#include "vecmath.h"
#include "int8_rows.h"

VNNI static void matmul_vnni(const float *x, int64_t M, const int8_t *q, const float *scale, const float *bias,
                             float *y, int64_t N, int64_t K, int64_t gelu) {
    uint8_t xq[MAX_ROWS * 2 * VNNI_MAX_K] __attribute__((aligned(64)));
    float s[MAX_ROWS][2];
    for (int64_t m = 0; m < M; m++) split_row(x + m * K, K, xq + m * 2 * K, s[m]);
    #pragma omp parallel
    {
        int64_t nt = omp_get_num_threads(), id = omp_get_thread_num(), lo = N / 4 * id / nt, hi = N / 4 * (id + 1) / nt;
        vnni_span(xq, (const float (*)[2])s, M, q, scale, bias, y, N, K, lo, hi, 0);
        if (gelu)  /* this thread's own outputs, still in its cache */
            for (int64_t m = 0; m < M; m++) gelu_span(y + m * N + 4 * lo, y + m * N + 4 * lo, 4 * (hi - lo));
    }
}

static void matmul_fp32(const float *x, int64_t M, const int8_t *q, const float *scale, const float *bias,
                        float *y, int64_t N, int64_t K, int64_t gelu) {
    int64_t ahead = prefetch_distance(K);
    #pragma omp parallel
    {
        int64_t nt = omp_get_num_threads(), id = omp_get_thread_num(), lo = N / 4 * id / nt, hi = N / 4 * (id + 1) / nt;
        for (int64_t b = lo; b < hi; b++) {
            int64_t o = 4 * b;
            for (int64_t m0 = 0; m0 < M; m0 += 2) {  /* rows by pairs: the block is in L1 after the first */
                float acc[8];
                int64_t pair = M - m0 < 2 ? M - m0 : 2;
                rows4(x + m0 * K, pair, q + o * K, K, acc, ahead);
                for (int64_t i = 0; i < pair; i++)
                    for (int j = 0; j < 4; j++)
                        y[(m0 + i) * N + o + j] = acc[i * 4 + j] * scale[o + j] + (bias ? bias[o + j] : 0.0f);
            }
        }
        if (gelu)
            for (int64_t m = 0; m < M; m++) gelu_span(y + m * N + 4 * lo, y + m * N + 4 * lo, 4 * (hi - lo));
    }
}

/* 0 on success; 1 for shapes or a `pieces` this machine cannot do (see the top of the file).
 * gelu: 1 applies GELU to the result (the feed-forward's first layer), 0 not. */
int wavecraft_int8_matmul(const float *x, int64_t M, const int8_t *q, const float *scale, const float *bias,
                          float *y, int64_t N, int64_t K, int64_t pieces, int64_t gelu) {
    if (M < 1 || M > MAX_ROWS || K % 16 != 0) return 1;
    if (pieces == 2) {
        if (K % 64 != 0 || K > VNNI_MAX_K || !__builtin_cpu_supports("avx512vnni")) return 1;
        matmul_vnni(x, M, q, scale, bias, y, N, K, gelu);
    } else if (pieces == 0) {
        matmul_fp32(x, M, q, scale, bias, y, N, K, gelu);
    } else {
        return 1;
    }
    for (int64_t o = N / 4 * 4; o < N; o++)  /* the last N % 4 rows, fp32 activations */
        for (int64_t m0 = 0; m0 < M; m0 += 2) {
            float acc[2];
            int64_t pair = M - m0 < 2 ? M - m0 : 2;
            row1(x + m0 * K, pair, q + o * K, K, acc);
            for (int64_t m = m0; m < m0 + pair; m++) {
                y[m * N + o] = acc[m - m0] * scale[o] + (bias ? bias[o] : 0.0f);
                if (gelu) gelu_span(y + m * N + o, y + m * N + o, 1);
            }
        }
    return 0;
}
