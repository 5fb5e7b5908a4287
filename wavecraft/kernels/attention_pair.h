/* One query position against one (batch row, head) of a KV cache, shared by the decode attention
 * (attention.c) and the fused int8 decode step (decode_step.c). See attention.c. */
#ifndef WAVECRAFT_ATTENTION_PAIR_H
#define WAVECRAFT_ATTENTION_PAIR_H
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
  static inline void NAME(const float *q, const T *k, const T *v, int64_t n, float scale, const uint8_t *allowed, \
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

/* the pair kernel for this head size and cache dtype (bf16: 1 for bfloat16); 1 if none */
static inline int attend_pair(const float *q, const void *k, const void *v, int64_t n, int64_t hd, float scale,
                              const uint8_t *allowed, float *scores, float *out, int64_t bf16) {
  if (bf16) {
    const uint16_t *kp = (const uint16_t *)k, *vp = (const uint16_t *)v;
    if (hd == 32) pair_bf16_2(q, kp, vp, n, scale, allowed, scores, out);
    else if (hd == 64) pair_bf16_4(q, kp, vp, n, scale, allowed, scores, out);
    else if (hd == 128) pair_bf16_8(q, kp, vp, n, scale, allowed, scores, out);
    else return 1;
  } else {
    const float *kp = (const float *)k, *vp = (const float *)v;
    if (hd == 32) pair_f32_2(q, kp, vp, n, scale, allowed, scores, out);
    else if (hd == 64) pair_f32_4(q, kp, vp, n, scale, allowed, scores, out);
    else if (hd == 128) pair_f32_8(q, kp, vp, n, scale, allowed, scores, out);
    else return 1;
  }
  return 0;
}

#endif
