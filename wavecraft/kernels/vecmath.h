/* Vectorised fp32 functions shared by the kernels (16 lanes, AVX-512). */
#ifndef WAVECRAFT_VECMATH_H
#define WAVECRAFT_VECMATH_H
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

#endif
