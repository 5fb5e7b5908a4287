/* One LSTM layer over a whole piece of time, for small batches (the codec's LSTM at inference).
 *
 * Each step is a matrix-vector product with the recurrent matrix, too big for L2 (16 MB at 1024
 * units), so the step is bound by how fast the cores read it from L3. Each thread owns blocks of
 * 16 hidden units; for every unit it reads the unit's four gate rows (i, f, g, o) at once, keeps
 * the sums, and finishes the block with vectorised gate arithmetic, so no step needs more than one
 * barrier. Successive steps walk the blocks in opposite directions: the rows read last are still
 * in L2 when the next step begins. Gate non-linearities use an expm1 accurate to about an ulp
 * (no cancellation near zero); outputs match torch's to float rounding. */
#include <stdint.h>
#include <omp.h>
#include <immintrin.h>
#include "vecmath.h"

/* the four sums of a0..a3 as one 128-bit vector [s0, s1, s2, s3] */
static inline __m128 sum4(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
  __m512 r01 = _mm512_add_ps(_mm512_unpacklo_ps(a0, a1), _mm512_unpackhi_ps(a0, a1));
  __m512 r23 = _mm512_add_ps(_mm512_unpacklo_ps(a2, a3), _mm512_unpackhi_ps(a2, a3));
  __m512 s = _mm512_add_ps(_mm512_shuffle_ps(r01, r23, 0x44), _mm512_shuffle_ps(r01, r23, 0xEE));
  __m256 h = _mm256_add_ps(_mm512_castps512_ps256(s), _mm512_extractf32x8_ps(s, 1));
  return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

/* gate sums of unit j for BB rows: rows j, H+j, 2H+j, 3H+j of w [4H, H] against h [BB, H];
 * g[q * 16 * BB + b * 16 + u] for gate q, row b, unit u of the block */
#define UNIT(BB) \
  static inline void unit##BB(const float *w, int64_t H, int64_t j, const float *h, float *g, int u) { \
    __m512 a[BB][4]; \
    for (int b = 0; b < BB; b++) for (int q = 0; q < 4; q++) a[b][q] = _mm512_setzero_ps(); \
    const float *r0 = w + j * H, *r1 = r0 + H * H, *r2 = r1 + H * H, *r3 = r2 + H * H; \
    for (int64_t i = 0; i < H; i += 16) { \
      __m512 w0 = _mm512_loadu_ps(r0 + i), w1 = _mm512_loadu_ps(r1 + i), w2 = _mm512_loadu_ps(r2 + i), w3 = _mm512_loadu_ps(r3 + i); \
      for (int b = 0; b < BB; b++) { \
        __m512 x = _mm512_loadu_ps(h + b * H + i); \
        a[b][0] = _mm512_fmadd_ps(w0, x, a[b][0]); a[b][1] = _mm512_fmadd_ps(w1, x, a[b][1]); \
        a[b][2] = _mm512_fmadd_ps(w2, x, a[b][2]); a[b][3] = _mm512_fmadd_ps(w3, x, a[b][3]); \
      } \
    } \
    for (int b = 0; b < BB; b++) { \
      float s[4]; _mm_storeu_ps(s, sum4(a[b][0], a[b][1], a[b][2], a[b][3])); \
      for (int q = 0; q < 4; q++) g[(q * BB + b) * 16 + u] = s[q]; \
    } \
  }
UNIT(1)
UNIT(2)
UNIT(3)
UNIT(4)

/* One LSTM layer over T steps, batch B <= 4, hidden H (a multiple of 16).
 * gx [T, B, 4H]: input projections plus both biases (gates i, f, g, o, as in torch);
 * w [4H, H]: recurrent weights; h0 [B, H]; c [B, H]: the initial cell state, updated in place;
 * out [T, B, H]: the hidden states. */
int wavecraft_lstm_layer(const float *gx, const float *w, const float *h0, float *c, float *out,
                         int64_t T, int64_t B, int64_t H) {
  if (B < 1 || B > 4 || H % 16 != 0) return 1;
  int64_t blocks = H / 16;
  #pragma omp parallel
  {
    int nt = omp_get_num_threads(), id = omp_get_thread_num();
    int64_t lo = blocks * id / nt, hi = blocks * (id + 1) / nt;
    float g[4 * 4 * 16];
    for (int64_t t = 0; t < T; t++) {
      const float *h = t == 0 ? h0 : out + (t - 1) * B * H;
      float *hn = out + t * B * H;
      const float *gt = gx + t * B * 4 * H;
      for (int64_t n = 0; n < hi - lo; n++) {
        /* alternate directions step by step: the rows read last are still in this core's L2 */
        int64_t j0 = 16 * ((t & 1) ? hi - 1 - n : lo + n);
        for (int u = 0; u < 16; u++) {
          switch (B) { case 1: unit1(w, H, j0 + u, h, g, u); break; case 2: unit2(w, H, j0 + u, h, g, u); break;
                       case 3: unit3(w, H, j0 + u, h, g, u); break; default: unit4(w, H, j0 + u, h, g, u); }
        }
        for (int64_t b = 0; b < B; b++) {
          const float *gb = gt + b * 4 * H + j0;
          __m512 gi = _mm512_add_ps(_mm512_loadu_ps(g + (0 * B + b) * 16), _mm512_loadu_ps(gb));
          __m512 gf = _mm512_add_ps(_mm512_loadu_ps(g + (1 * B + b) * 16), _mm512_loadu_ps(gb + H));
          __m512 gg = _mm512_add_ps(_mm512_loadu_ps(g + (2 * B + b) * 16), _mm512_loadu_ps(gb + 2 * H));
          __m512 go = _mm512_add_ps(_mm512_loadu_ps(g + (3 * B + b) * 16), _mm512_loadu_ps(gb + 3 * H));
          float *cb = c + b * H + j0;
          __m512 cn = _mm512_fmadd_ps(sigmoid16(gf), _mm512_loadu_ps(cb), _mm512_mul_ps(sigmoid16(gi), tanh16(gg)));
          _mm512_storeu_ps(cb, cn);
          _mm512_storeu_ps(hn + b * H + j0, _mm512_mul_ps(sigmoid16(go), tanh16(cn)));
        }
      }
      #pragma omp barrier
    }
  }
  return 0;
}
