/* Weight-only int8 matrix product for decoding: y[m, o] = scale[o] * sum_i x[m, i] * q[o, i] (+ bias[o])
 * for one or two rows of fp32 activations x [M, K], int8 weights q [N, K] (row-major), fp32 scales [N].
 *
 * Decoding streams every weight from memory once per step, so what matters is keeping the memory
 * busy: each thread walks four weight rows at once (four independent streams) and prefetches the
 * block it will read next. Activations stay fp32 and sums are fp32. Requires K % 16 == 0. */
#include <stdint.h>
#include <immintrin.h>

#define LOAD_W(p) _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p))))

static void rows4(const float *x, int64_t M, const int8_t *r, int64_t K, float *acc /* [M][4] */, int64_t ahead) {
    __m512 a[2][4];
    for (int m = 0; m < 2; m++)
        for (int j = 0; j < 4; j++) a[m][j] = _mm512_setzero_ps();
    for (int64_t i = 0; i < K; i += 16) {
        if ((i & 63) == 0)
            for (int j = 0; j < 4; j++) _mm_prefetch((const char *)(r + j * K + i + ahead), _MM_HINT_T0);
        __m512 x0 = _mm512_loadu_ps(x + i);
        __m512 x1 = M > 1 ? _mm512_loadu_ps(x + K + i) : x0;
        for (int j = 0; j < 4; j++) {
            __m512 w = LOAD_W(r + j * K + i);
            a[0][j] = _mm512_fmadd_ps(w, x0, a[0][j]);
            if (M > 1) a[1][j] = _mm512_fmadd_ps(w, x1, a[1][j]);
        }
    }
    for (int64_t m = 0; m < M; m++)
        for (int j = 0; j < 4; j++) acc[m * 4 + j] = _mm512_reduce_add_ps(a[m][j]);
}

static void row1(const float *x, int64_t M, const int8_t *r, int64_t K, float *acc /* [M] */) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    for (int64_t i = 0; i < K; i += 16) {
        __m512 w = LOAD_W(r + i);
        a0 = _mm512_fmadd_ps(w, _mm512_loadu_ps(x + i), a0);
        if (M > 1) a1 = _mm512_fmadd_ps(w, _mm512_loadu_ps(x + K + i), a1);
    }
    acc[0] = _mm512_reduce_add_ps(a0);
    if (M > 1) acc[1] = _mm512_reduce_add_ps(a1);
}

int wavecraft_int8_matmul(const float *x, int64_t M, const int8_t *q, const float *scale, const float *bias,
                          float *y, int64_t N, int64_t K) {
    if (M < 1 || M > 2 || K % 16 != 0) return 1;
    int64_t blocks = N / 4;
    int64_t ahead = 4 * K > 16384 ? 4 * K : 16384;  /* the next block of rows, at least 16 KB ahead */
    #pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < blocks; b++) {
        float acc[8];
        int64_t o = 4 * b;
        rows4(x, M, q + o * K, K, acc, ahead);
        for (int64_t m = 0; m < M; m++)
            for (int j = 0; j < 4; j++)
                y[m * N + o + j] = acc[m * 4 + j] * scale[o + j] + (bias ? bias[o + j] : 0.0f);
    }
    for (int64_t o = 4 * blocks; o < N; o++) {  /* the last N % 4 rows */
        float acc[2];
        row1(x, M, q + o * K, K, acc);
        for (int64_t m = 0; m < M; m++) y[m * N + o] = acc[m] * scale[o] + (bias ? bias[o] : 0.0f);
    }
    return 0;
}
