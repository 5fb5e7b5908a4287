/* Attention of one query position against a KV cache, for decoding:
 *   out[b, h] = softmax(scale * q[b, h] . K[b, h, :n]^T + mask) V[b, h, :n]
 * with fp32 queries and output and an fp32 or bfloat16 cache ([B, H, L, hd] with rows of hd
 * contiguous numbers, any strides between heads and batch rows). PyTorch's CPU attention is built
 * for many queries: at one query its fixed cost is several times the time to read the cache
 * (~75 us for 23 keys; ~200-280 us for 250 bfloat16 positions, 2 MB, which memory delivers in
 * ~100 us), and it converts the query and the result between dtypes. This walks each (b, h)
 * pair's keys once for the scores, once for the values, on PyTorch's threads. */
#include <math.h>
#include <stdint.h>
#include <immintrin.h>
#include "vecmath.h"

#define MAX_POSITIONS 16384
#ifndef AHEAD
#define AHEAD 16  /* positions prefetched ahead: twice as fast as without */
#endif

static inline __m512 load_f32(const float *p) { return _mm512_loadu_ps(p); }
static inline __m512 load_bf16(const uint16_t *p) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
}

/* one (b, h) pair with C * 16 = hd; allowed: n flags (nonzero: the key may be attended) or NULL */
#define PAIR(NAME, T, LOAD, C) \
  static void NAME(const float *q, const T *k, const T *v, int64_t n, float scale, const uint8_t *allowed, \
                   float *scores, float *out) { \
    __m512 qv[C], o[C]; \
    for (int i = 0; i < C; i++) qv[i] = _mm512_mul_ps(_mm512_loadu_ps(q + 16 * i), _mm512_set1_ps(scale)); \
    float best = -INFINITY; \
    for (int64_t t = 0; t < n; t++) { \
      const T *kt = k + t * (16 * C); \
      for (int line = 0; line < (int)(16 * C * sizeof(T)) / 64; line++) \
        _mm_prefetch((const char *)(kt + AHEAD * 16 * C) + 64 * line, _MM_HINT_T0); \
      __m512 acc = _mm512_mul_ps(qv[0], LOAD(kt)); \
      for (int i = 1; i < C; i++) acc = _mm512_fmadd_ps(qv[i], LOAD(kt + 16 * i), acc); \
      float s = (allowed && !allowed[t]) ? -INFINITY : _mm512_reduce_add_ps(acc); \
      scores[t] = s; \
      best = s > best ? s : best; \
    } \
    __m512 sum = _mm512_setzero_ps(), top = _mm512_set1_ps(best); \
    int64_t t = 0; \
    for (; t + 16 <= n; t += 16) { \
      __m512 e = _mm512_add_ps(expm1_16(_mm512_sub_ps(_mm512_loadu_ps(scores + t), top)), _mm512_set1_ps(1.0f)); \
      _mm512_storeu_ps(scores + t, e); \
      sum = _mm512_add_ps(sum, e); \
    } \
    if (t < n) { \
      __mmask16 m = (__mmask16)((1u << (n - t)) - 1); \
      __m512 e = _mm512_add_ps(expm1_16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, scores + t), top)), _mm512_set1_ps(1.0f)); \
      _mm512_mask_storeu_ps(scores + t, m, e); \
      sum = _mm512_add_ps(sum, _mm512_maskz_mov_ps(m, e)); \
    } \
    for (int i = 0; i < C; i++) o[i] = _mm512_setzero_ps(); \
    for (int64_t t = 0; t < n; t++) { \
      __m512 p = _mm512_set1_ps(scores[t]); \
      const T *vt = v + t * (16 * C); \
      for (int line = 0; line < (int)(16 * C * sizeof(T)) / 64; line++) \
        _mm_prefetch((const char *)(vt + AHEAD * 16 * C) + 64 * line, _MM_HINT_T0); \
      for (int i = 0; i < C; i++) o[i] = _mm512_fmadd_ps(p, LOAD(vt + 16 * i), o[i]); \
    } \
    __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum)); \
    for (int i = 0; i < C; i++) _mm512_storeu_ps(out + 16 * i, _mm512_mul_ps(o[i], inv)); \
  }
PAIR(pair_f32_2, float, load_f32, 2)
PAIR(pair_f32_4, float, load_f32, 4)
PAIR(pair_f32_8, float, load_f32, 8)
PAIR(pair_bf16_2, uint16_t, load_bf16, 2)
PAIR(pair_bf16_4, uint16_t, load_bf16, 4)
PAIR(pair_bf16_8, uint16_t, load_bf16, 8)

/* q [B, H, hd] at strides (qb, qh); k, v at strides (kb, kh) with rows of hd contiguous numbers
 * (position stride hd); allowed [B, n] bytes at stride ab, or NULL; out [B, H, hd] contiguous.
 * bf16: 1 if the cache is bfloat16. Returns 1 for what it does not handle (hd not 32, 64 or 128,
 * n out of range), 0 on success. */
int wavecraft_attention_decode(const float *q, int64_t qb, int64_t qh, const void *k, const void *v, int64_t kb,
                               int64_t kh, int64_t B, int64_t H, int64_t n, int64_t hd, float scale,
                               const uint8_t *allowed, int64_t ab, float *out, int64_t bf16) {
  if ((hd != 32 && hd != 64 && hd != 128) || n < 1 || n > MAX_POSITIONS) return 1;
  #pragma omp parallel for schedule(static)
  for (int64_t pair = 0; pair < B * H; pair++) {
    float scores[MAX_POSITIONS];
    int64_t b = pair / H, h = pair % H;
    const float *qp = q + b * qb + h * qh;
    const uint8_t *al = allowed ? allowed + b * ab : 0;
    float *op = out + pair * hd;
    int64_t off = b * kb + h * kh;
    if (bf16) {
      const uint16_t *kp = (const uint16_t *)k + off, *vp = (const uint16_t *)v + off;
      if (hd == 32) pair_bf16_2(qp, kp, vp, n, scale, al, scores, op);
      else if (hd == 64) pair_bf16_4(qp, kp, vp, n, scale, al, scores, op);
      else pair_bf16_8(qp, kp, vp, n, scale, al, scores, op);
    } else {
      const float *kp = (const float *)k + off, *vp = (const float *)v + off;
      if (hd == 32) pair_f32_2(qp, kp, vp, n, scale, al, scores, op);
      else if (hd == 64) pair_f32_4(qp, kp, vp, n, scale, al, scores, op);
      else pair_f32_8(qp, kp, vp, n, scale, al, scores, op);
    }
  }
  return 0;
}
