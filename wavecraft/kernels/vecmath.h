/* Vectorised fp32 functions shared by the kernels (16 lanes, AVX-512). */
#ifndef WAVECRAFT_VECMATH_H
#define WAVECRAFT_VECMATH_H
#include <stdint.h>
#include <immintrin.h>

/* e^x - 1 for 16 lanes, about 1 ulp (no cancellation near 0): x = n ln2 + r,
 * e^r - 1 = r + r^2 p(r) with a degree-5 polynomial p, then 2^n (e^r - 1) + (2^n - 1). */
static inline __m512 expm1_16(__m512 x) {
  x = _mm512_min_ps(_mm512_set1_ps(88.0f), _mm512_max_ps(_mm512_set1_ps(-88.0f), x));  /* NaN stays NaN */
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  __m512 q = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r);
  __m512 scale = _mm512_scalef_ps(_mm512_set1_ps(1.0f), n);
  return _mm512_fmadd_ps(scale, q, _mm512_sub_ps(scale, _mm512_set1_ps(1.0f)));
}
static inline __m512 sigmoid16(__m512 x) {  /* 1 / (2 + (e^-x - 1)) */
  return _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_add_ps(_mm512_set1_ps(2.0f), expm1_16(_mm512_sub_ps(_mm512_setzero_ps(), x))));
}
static inline __m512 tanh16(__m512 x) {  /* (e^2x - 1) / ((e^2x - 1) + 2) */
  __m512 e = expm1_16(_mm512_add_ps(x, x));
  return _mm512_div_ps(e, _mm512_add_ps(e, _mm512_set1_ps(2.0f)));
}

/* GELU, x * (1 + erf(x / sqrt 2)) / 2, with erf as PyTorch's vectorised CPU code computes it
 * (Abramowitz & Stegun 7.1.26, absolute error below 1.5e-7): results within a few 1e-7 of F.gelu. */
static inline __m512 gelu16(__m512 x) {
  const __m512 one = _mm512_set1_ps(1.0f);
  __m512 z = _mm512_mul_ps(x, _mm512_set1_ps(0.70710678118654752f));
  __m512 a = _mm512_abs_ps(z);
  __m512 t = _mm512_div_ps(one, _mm512_fmadd_ps(_mm512_set1_ps(0.3275911f), a, one));
  __m512 r = _mm512_fmadd_ps(_mm512_set1_ps(1.061405429f), t, _mm512_set1_ps(-1.453152027f));
  r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(1.421413741f));
  r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(-0.284496736f));
  r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(0.254829592f));
  __m512 e = _mm512_add_ps(expm1_16(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(z, z))), one);
  __m512 erf_abs = _mm512_fnmadd_ps(_mm512_mul_ps(e, t), r, one);
  __m512 erf = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(erf_abs),
                                    _mm512_and_si512(_mm512_castps_si512(z), _mm512_set1_epi32((int)0x80000000u))));
  return _mm512_mul_ps(_mm512_mul_ps(x, _mm512_set1_ps(0.5f)), _mm512_add_ps(one, erf));
}

/* gelu16 over n contiguous numbers, in place or not */
static inline void gelu_span(const float *x, float *y, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, gelu16(_mm512_loadu_ps(x + i)));
  if (i < n) {
    __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(y + i, m, gelu16(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

#endif
