/* A whole SEANet residual block at inference, channels last, in one call:
 *
 *   y[i] = x[i + skip] + b2 + W2^T elu(b1 + sum_j W1_j^T elu(x[i + j])),   j < k,
 *
 * over rows of C samples (x already padded: n + k - 1 rows in, n rows out). Done as separate
 * PyTorch calls (an ELU pass, k tap products, a bias pass, another ELU, a 1x1 product, the skip add)
 * the block at the codec's 64 and 128 channels runs at a third of the machine's matrix-product
 * speed: every pass streams the full-rate activations through memory, and the products have 32-64
 * columns, too narrow for the BLAS's blocking. Here each thread takes tiles of TILE output rows;
 * the ELU'd input rows, the hidden rows and the products stay in L1/L2. A tile's im2col row i is
 * simply the k * C floats from row i of the ELU'd input, so no copy is needed for the taps.
 * Sums run in another order than the BLAS's: results agree to float rounding. */
#include <stdint.h>
#include <stdlib.h>
#include <omp.h>
#include <immintrin.h>
#include "vecmath.h"

#define TILE 48  /* output rows per task: a multiple of every micro-kernel's row count */

static inline __m512 elu16(__m512 v) {
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ), expm1_16(v), v);
}

/* acc[r][v] = sum_q a[r * lda + q] w[q * ldw + 16 v], for MR rows and NV vectors of 16 columns;
 * then either h = elu(acc + bias) for all MR rows (hidden rows, into a padded buffer), or
 * y = acc + bias + skip for the first `valid` rows (the block's output). */
#define MICRO(MR, NV)                                                                                  \
  static void micro_##MR##x##NV(const float *a, int64_t lda, const float *w, int64_t ldw, int64_t K,    \
                                const float *bias, float *out, int64_t ldo, const float *skip,         \
                                int64_t lds, int64_t valid) {                                          \
    __m512 acc[MR][NV];                                                                                \
    for (int r = 0; r < MR; r++)                                                                       \
      for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();                                    \
    for (int64_t q = 0; q < K; q++) {                                                                  \
      __m512 wv[NV];                                                                                   \
      for (int v = 0; v < NV; v++) wv[v] = _mm512_loadu_ps(w + q * ldw + 16 * v);                      \
      for (int r = 0; r < MR; r++) {                                                                   \
        __m512 av = _mm512_set1_ps(a[r * lda + q]);                                                    \
        for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(av, wv[v], acc[r][v]);                \
      }                                                                                                \
    }                                                                                                  \
    for (int r = 0; r < MR; r++) {                                                                     \
      if (skip == 0) {                                                                                 \
        for (int v = 0; v < NV; v++)                                                                   \
          _mm512_storeu_ps(out + r * ldo + 16 * v, elu16(_mm512_add_ps(acc[r][v], _mm512_loadu_ps(bias + 16 * v)))); \
      } else if (r < valid) {                                                                          \
        for (int v = 0; v < NV; v++)                                                                   \
          _mm512_storeu_ps(out + r * ldo + 16 * v,                                                     \
                           _mm512_add_ps(_mm512_add_ps(acc[r][v], _mm512_loadu_ps(bias + 16 * v)),     \
                                         _mm512_loadu_ps(skip + r * lds + 16 * v)));                   \
      }                                                                                                \
    }                                                                                                  \
  }
MICRO(6, 4)
MICRO(8, 3)
MICRO(12, 2)
MICRO(24, 1)

/* out[rows, N] from a[rows, K] (rows a multiple of 24 are readable) times w[K, N], in column
 * chunks of up to 64 and row micro-tiles sized for 24 accumulators */
static void product(const float *a, int64_t lda, int64_t rows, const float *w, int64_t K, int64_t N,
                    const float *bias, float *out, int64_t ldo, const float *skip, int64_t lds) {
  for (int64_t n0 = 0; n0 < N; n0 += 64) {
    int64_t nv = (N - n0) / 16 < 4 ? (N - n0) / 16 : 4;
    int64_t mr = nv == 4 ? 6 : nv == 3 ? 8 : nv == 2 ? 12 : 24;
    for (int64_t r0 = 0; r0 < rows; r0 += mr) {
      const float *ar = a + r0 * lda, *sr = skip ? skip + r0 * lds + n0 : 0;
      float *o = out + r0 * ldo + n0;
      switch (nv) {
        case 4: micro_6x4(ar, lda, w + n0, N, K, bias + n0, o, ldo, sr, lds, rows - r0); break;
        case 3: micro_8x3(ar, lda, w + n0, N, K, bias + n0, o, ldo, sr, lds, rows - r0); break;
        case 2: micro_12x2(ar, lda, w + n0, N, K, bias + n0, o, ldo, sr, lds, rows - r0); break;
        default: micro_24x1(ar, lda, w + n0, N, K, bias + n0, o, ldo, sr, lds, rows - r0);
      }
    }
  }
}

/* The input rows are `head` (head_rows of them: a streaming piece's kept samples, may be 0)
 * followed by `x`, n + k - 1 rows in all, rows of C contiguous floats; w1 [k * C, H] (tap-major),
 * b1 [H], w2 [H, C], b2 [C], y [n, C]; skip: which input row is added to output row 0 (the left
 * padding). C and H multiples of 16. Returns 1 on bad sizes or allocation failure. */
int wavecraft_resblock(const float *head, int64_t head_rows, const float *x, int64_t n, int64_t C, int64_t k,
                       int64_t skip, const float *w1, const float *b1, int64_t H, const float *w2,
                       const float *b2, float *y) {
  if (C % 16 || H % 16 || C <= 0 || H <= 0 || k < 1 || skip < 0 || skip >= k || head_rows < 0 ||
      head_rows > n + k - 1)
    return 1;
  int64_t tiles = (n + TILE - 1) / TILE, span = TILE + k - 1;
  int failed = 0;
  #pragma omp parallel reduction(|:failed)
  {
    /* per thread: the tile's raw input rows (the skip), their ELU, the hidden rows */
    float *raw = aligned_alloc(64, (size_t)(2 * span * C + TILE * H) * sizeof(float));
    if (!raw) failed = 1;
    float *e = raw ? raw + span * C : 0, *h = raw ? e + span * C : 0;
    /* tiles handed out two at a time: a core slowed by a neighbour takes fewer. Against a static
     * split, alternated call by call: the same when the cores run alike, up to 13 % faster at 64
     * channels (3-4 % at 128 and 256) in a spell where they did not */
    #pragma omp for schedule(dynamic, 2)
    for (int64_t t = 0; t < tiles; t++) {
      if (!raw) continue;
      int64_t i0 = t * TILE, rows = n - i0 < TILE ? n - i0 : TILE;
      int64_t in_rows = rows + k - 1;
      for (int64_t r = 0; r < in_rows; r++) {
        int64_t row = i0 + r;
        const float *src = row < head_rows ? head + row * C : x + (row - head_rows) * C;
        for (int64_t c = 0; c < C; c += 16) {
          __m512 v = _mm512_loadu_ps(src + c);
          _mm512_storeu_ps(raw + r * C + c, v);
          _mm512_storeu_ps(e + r * C + c, elu16(v));
        }
      }
      for (int64_t i = in_rows * C; i < span * C; i += 16) _mm512_storeu_ps(e + i, _mm512_setzero_ps());
      int64_t padded = (rows + 23) / 24 * 24;
      product(e, C, padded, w1, k * C, H, b1, h, H, 0, 0);
      product(h, H, rows, w2, H, C, b2, y + i0 * C, C, raw + skip * C, C);
    }
    free(raw);
  }
  return failed;
}
