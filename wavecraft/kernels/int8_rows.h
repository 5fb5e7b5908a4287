/* Weight-only int8 row products shared by the int8 matrix product (int8_matmul.c) and the fused
 * int8 decode step (decode_step.c): four weight rows at a time against one or two activation rows,
 * fp32 activations or (AVX512-VNNI) activations split into two int8 pieces. See int8_matmul.c. */
#ifndef WAVECRAFT_INT8_ROWS_H
#define WAVECRAFT_INT8_ROWS_H
#include <stdint.h>
#include <immintrin.h>

#define VNNI __attribute__((target("avx512f,avx512bw,avx512dq,avx512vnni")))
#define VNNI_MAX_K 16384
#define MAX_ROWS 4  /* activation rows a product takes: two prompts and their CFG null rows */

/* bytes ahead to prefetch: the next block of four rows, at least 16 KB */
static inline int64_t prefetch_distance(int64_t K) { return 4 * K > 16384 ? 4 * K : 16384; }

#define LOAD_W(p) _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p))))

/* four weight rows of type T (LOAD: 16 of them as fp32 lanes) against M <= 2 fp32 activation
 * rows, with one prefetch per cache line `ahead` elements on; acc [M][4]. rows4 is the int8 one;
 * decode_step.c makes an fp32 one from the same loop. */
#define ROWS4(NAME, T, LOAD) \
    static inline void NAME(const float *x, int64_t M, const T *r, int64_t K, float *acc, int64_t ahead) { \
        __m512 a[2][4]; \
        for (int m = 0; m < 2; m++) \
            for (int j = 0; j < 4; j++) a[m][j] = _mm512_setzero_ps(); \
        for (int64_t i = 0; i < K; i += 16) { \
            if ((i * (int64_t)sizeof(T)) % 64 == 0) \
                for (int j = 0; j < 4; j++) _mm_prefetch((const char *)(r + j * K + i + ahead), _MM_HINT_T0); \
            __m512 x0 = _mm512_loadu_ps(x + i), x1 = M > 1 ? _mm512_loadu_ps(x + K + i) : x0; \
            for (int j = 0; j < 4; j++) { \
                __m512 w = LOAD(r + j * K + i); \
                a[0][j] = _mm512_fmadd_ps(w, x0, a[0][j]); \
                if (M > 1) a[1][j] = _mm512_fmadd_ps(w, x1, a[1][j]); \
            } \
        } \
        for (int64_t m = 0; m < M; m++) \
            for (int j = 0; j < 4; j++) acc[m * 4 + j] = _mm512_reduce_add_ps(a[m][j]); \
    }
ROWS4(rows4, int8_t, LOAD_W)

static inline void row1(const float *x, int64_t M, const int8_t *r, int64_t K, float *acc /* [M] */) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    for (int64_t i = 0; i < K; i += 16) {
        __m512 w = LOAD_W(r + i);
        a0 = _mm512_fmadd_ps(w, _mm512_loadu_ps(x + i), a0);
        if (M > 1) a1 = _mm512_fmadd_ps(w, _mm512_loadu_ps(x + K + i), a1);
    }
    acc[0] = _mm512_reduce_add_ps(a0);
    if (M > 1) acc[1] = _mm512_reduce_add_ps(a1);
}

/* sum of each of four int32 vectors, as [s0, s1, s2, s3] */
VNNI static inline __m128i hsum4(__m512i a0, __m512i a1, __m512i a2, __m512i a3) {
    __m512i r01 = _mm512_add_epi32(_mm512_unpacklo_epi32(a0, a1), _mm512_unpackhi_epi32(a0, a1));
    __m512i r23 = _mm512_add_epi32(_mm512_unpacklo_epi32(a2, a3), _mm512_unpackhi_epi32(a2, a3));
    __m512i s = _mm512_add_epi32(_mm512_unpacklo_epi64(r01, r23), _mm512_unpackhi_epi64(r01, r23));
    __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(s), _mm512_extracti64x4_epi64(s, 1));
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

/* four weight rows against M rows of two biased pieces xq [M][2][K]; acc [M][2][4], plus the rows' weight sums */
VNNI static inline void rows4_vnni(const uint8_t *xq, int64_t M, const int8_t *r, int64_t K, int32_t *acc, int32_t *rowsum,
                            int64_t ahead) {
    __m512i a[2][2][4], ws[4];
    const __m512i ones = _mm512_set1_epi8(1);
    for (int j = 0; j < 4; j++) {
        ws[j] = _mm512_setzero_si512();
        for (int m = 0; m < 2; m++) a[m][0][j] = a[m][1][j] = _mm512_setzero_si512();
    }
    for (int64_t i = 0; i < K; i += 64) {
        __m512i w[4];
        for (int j = 0; j < 4; j++) {
            _mm_prefetch((const char *)(r + j * K + i + ahead), _MM_HINT_T0);
            w[j] = _mm512_loadu_si512((const void *)(r + j * K + i));
            ws[j] = _mm512_dpbusd_epi32(ws[j], ones, w[j]);
        }
        for (int m = 0; m < M; m++)
            for (int p = 0; p < 2; p++) {
                __m512i xv = _mm512_loadu_si512((const void *)(xq + (m * 2 + p) * K + i));
                for (int j = 0; j < 4; j++) a[m][p][j] = _mm512_dpbusd_epi32(a[m][p][j], xv, w[j]);
            }
    }
    _mm_storeu_si128((__m128i *)rowsum, hsum4(ws[0], ws[1], ws[2], ws[3]));
    for (int m = 0; m < M; m++)
        for (int p = 0; p < 2; p++)
            _mm_storeu_si128((__m128i *)(acc + (m * 2 + p) * 4), hsum4(a[m][p][0], a[m][p][1], a[m][p][2], a[m][p][3]));
}

/* x row -> two pieces of a + 128 (a in [-127, 127]) with their scales */
VNNI static inline void split_row(const float *x, int64_t K, uint8_t *out, float *scales) {
    __m512 big = _mm512_setzero_ps();
    for (int64_t i = 0; i < K; i += 16) big = _mm512_max_ps(big, _mm512_abs_ps(_mm512_loadu_ps(x + i)));
    float amax = _mm512_reduce_max_ps(big);
    scales[0] = amax > 0 ? amax / 127.0f : 1.0f;
    scales[1] = scales[0] / 254.0f;
    const __m512 lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
    const __m512i bias = _mm512_set1_epi32(128);
    for (int64_t i = 0; i < K; i += 16) {
        __m512 rest = _mm512_loadu_ps(x + i);
        for (int p = 0; p < 2; p++) {
            __m512 a = _mm512_mul_ps(rest, _mm512_set1_ps(1.0f / scales[p]));
            a = _mm512_min_ps(_mm512_max_ps(_mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), lo), hi);
            _mm_storeu_si128((__m128i *)(out + p * K + i), _mm512_cvtepi32_epi8(_mm512_add_epi32(_mm512_cvtps_epi32(a), bias)));
            rest = _mm512_fnmadd_ps(a, _mm512_set1_ps(scales[p]), rest);
        }
    }
}

/* outputs [4 lo, 4 hi) of the product of M activation rows, already split (xq, s), with q [N, K]:
 * y[m, o] = scale[o] * sum (+ bias[o]), added to what y holds when `accumulate` (a residual).
 * Rows beyond two go by pairs over each block of four weight rows, which the first pair has just
 * brought into L1: the weights are still read from memory once. */
VNNI static inline void vnni_span(const uint8_t *xq, const float (*s)[2], int64_t M, const int8_t *q, const float *scale,
                                  const float *bias, float *y, int64_t N, int64_t K, int64_t lo, int64_t hi,
                                  int accumulate) {
    int64_t ahead = prefetch_distance(K);
    for (int64_t b = lo; b < hi; b++) {
        int64_t o = 4 * b;
        for (int64_t m0 = 0; m0 < M; m0 += 2) {
            int32_t acc[2 * 2 * 4], rowsum[4];
            int64_t pair = M - m0 < 2 ? M - m0 : 2;
            rows4_vnni(xq + m0 * 2 * K, pair, q + o * K, K, acc, rowsum, ahead);
            for (int64_t i = 0; i < pair; i++)
                for (int j = 0; j < 4; j++) {
                    int64_t m = m0 + i;
                    float sum = s[m][0] * (float)(acc[(i * 2) * 4 + j] - 128 * rowsum[j])
                              + s[m][1] * (float)(acc[(i * 2 + 1) * 4 + j] - 128 * rowsum[j]);
                    float value = sum * scale[o + j] + (bias ? bias[o + j] : 0.0f);
                    y[m * N + o + j] = accumulate ? y[m * N + o + j] + value : value;
                }
        }
    }
}

#endif
