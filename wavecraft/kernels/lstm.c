/* One LSTM layer over a whole piece of time, for small batches (the codec's LSTM at inference).
 *
 * Each step is a matrix-vector product with the recurrent matrix, too big for L2 (16 MB at 1024
 * units), so the step is bound by how fast the cores read it from L3. The hidden units go in
 * blocks of 16; for every unit the kernel reads the unit's four gate rows (i, f, g, o) at once,
 * keeps the sums, and finishes the block with vectorised gate arithmetic, so a step needs one
 * barrier. Successive steps walk the blocks in opposite directions, so the rows read last are
 * still in L2 when the next step begins. Threads work in pairs over a pair's share of the blocks:
 * on even steps the two walk inwards from the ends, claiming blocks from a shared span, and meet
 * wherever their speeds put the meeting point (a core slowed by a neighbour takes fewer blocks
 * instead of making the other wait at the barrier: with a static split, one thread of two waited
 * ~10 % of every step); on odd steps each walks back out over the blocks it took. Which thread
 * computes a unit does not change its sums, so the result does not depend on the split. Gate
 * non-linearities use an expm1 accurate to about an ulp (no cancellation near zero); outputs
 * match torch's to float rounding. */
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

/* The unclaimed blocks [left, right] of a pair of threads, packed in one word so that a claim
 * from either end is one compare-and-swap; on its own cache line. */
typedef struct { _Alignas(64) uint64_t span; char pad[56]; } span_t;

static inline uint64_t pack(int64_t left, int64_t right) { return (uint64_t)(uint32_t)left | ((uint64_t)(uint32_t)right << 32); }

/* the next block from the left (from_left) or the right end of the span, or -1 when none is left */
static inline int64_t claim(span_t *s, int from_left) {
  uint64_t old = __atomic_load_n(&s->span, __ATOMIC_RELAXED);
  for (;;) {
    int64_t left = (int32_t)(old & 0xffffffffu), right = (int32_t)(old >> 32);
    if (left > right) return -1;
    uint64_t next = from_left ? pack(left + 1, right) : pack(left, right - 1);
    if (__atomic_compare_exchange_n(&s->span, &old, next, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
      return from_left ? left : right;
  }
}

static inline void lstm_block(const float *w, int64_t H, int64_t B, int64_t j0, const float *h, const float *gt,
                              float *c, float *hn, float *g) {
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

#define MAX_PAIRS 32

/* One LSTM layer over T steps, batch B <= 4, hidden H (a multiple of 16).
 * gx [T, B, 4H]: input projections plus both biases (gates i, f, g, o, as in torch);
 * w [4H, H]: recurrent weights; h0 [B, H]; c [B, H]: the initial cell state, updated in place;
 * out [T, B, H]: the hidden states. */
int wavecraft_lstm_layer(const float *gx, const float *w, const float *h0, float *c, float *out,
                         int64_t T, int64_t B, int64_t H) {
  if (B < 1 || B > 4 || H % 16 != 0) return 1;
  int64_t blocks = H / 16;
  span_t spans[MAX_PAIRS][2];  /* per pair: the unclaimed blocks of the even steps, two slots in turn */
  #pragma omp parallel
  {
    int nt = omp_get_num_threads(), id = omp_get_thread_num();
    /* Threads work in pairs over a pair's share of the blocks (an odd count or too few blocks:
     * each thread alone over its own share, walking it in alternate directions). */
    int paired = nt % 2 == 0 && nt / 2 <= MAX_PAIRS && blocks >= 2 * nt, pair = id / 2, side = id % 2;
    int64_t lo = paired ? blocks * 2 * pair / nt : blocks * id / nt;
    int64_t hi = paired ? blocks * 2 * (pair + 1) / nt : blocks * (id + 1) / nt;
    if (paired && side == 0) spans[pair][0].span = pack(lo, hi - 1);
    float g[4 * 4 * 16];
    #pragma omp barrier
    for (int64_t t = 0; t < T; t++) {
      const float *h = t == 0 ? h0 : out + (t - 1) * B * H;
      float *hn = out + t * B * H;
      const float *gt = gx + t * B * 4 * H;
      if (!paired) {
        for (int64_t n = 0; n < hi - lo; n++)  /* the rows read last are still in this core's L2 */
          lstm_block(w, H, B, 16 * ((t & 1) ? hi - 1 - n : lo + n), h, gt, c, hn, g);
      } else if (!(t & 1)) {
        /* Inward: each thread starts at the end of the pair's share it finished at (rows still
         * in its L2), and they meet wherever their speeds put the meeting point: a thread slowed
         * by a neighbour takes fewer blocks and neither waits long at the barrier. */
        span_t *s = &spans[pair][(t >> 1) & 1];
        for (int64_t j; (j = claim(s, side == 0)) >= 0;) lstm_block(w, H, B, 16 * j, h, gt, c, hn, g);
      } else {
        /* Outward from the last even step's meeting point, each thread over the blocks it took,
         * the ones it read last first. Its span is no longer changing; the one the next even
         * step uses was last read two steps ago. */
        int64_t m = (int32_t)(__atomic_load_n(&spans[pair][(t >> 1) & 1].span, __ATOMIC_ACQUIRE) & 0xffffffffu);
        if (side == 0) {
          __atomic_store_n(&spans[pair][((t >> 1) + 1) & 1].span, pack(lo, hi - 1), __ATOMIC_RELAXED);
          for (int64_t j = m - 1; j >= lo; j--) lstm_block(w, H, B, 16 * j, h, gt, c, hn, g);
        } else {
          for (int64_t j = m; j < hi; j++) lstm_block(w, H, B, 16 * j, h, gt, c, hn, g);
        }
      }
      #pragma omp barrier
    }
  }
  return 0;
}
