/* Element-wise functions.
 *
 * ELU (alpha 1) for the codec at inference: y = x if x > 0 else e^x - 1, over rows of a
 * [rows, n] array whose rows may sit at any stride, so the result can be written straight into a
 * larger buffer (the streaming convolutions keep a few samples of history in front of each new
 * piece). PyTorch's ELU is bound by its exponential here; this one uses vecmath.h's expm1. */
#include <stdint.h>
#include <immintrin.h>
#include <omp.h>
#include "vecmath.h"

#define CHUNK 4096  /* samples per task: rows are split too, so a few wide rows still use every thread */

void wavecraft_elu(const float *x, int64_t rows, int64_t n, int64_t x_stride, float *y, int64_t y_stride) {
  int64_t chunks = (n + CHUNK - 1) / CHUNK;
  #pragma omp parallel for schedule(static)
  for (int64_t task = 0; task < rows * chunks; task++) {
    int64_t r = task / chunks, start = (task % chunks) * CHUNK;
    int64_t end = start + CHUNK < n ? start + CHUNK : n;
    const float *xr = x + r * x_stride;
    float *yr = y + r * y_stride;
    int64_t i = start;
    for (; i + 16 <= end; i += 16) {
      __m512 v = _mm512_loadu_ps(xr + i);
      __mmask16 positive = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ);
      _mm512_storeu_ps(yr + i, _mm512_mask_blend_ps(positive, expm1_16(v), v));
    }
    if (i < end) {
      __mmask16 m = (__mmask16)((1u << (end - i)) - 1);
      __m512 v = _mm512_maskz_loadu_ps(m, xr + i);
      __mmask16 positive = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ);
      _mm512_mask_storeu_ps(yr + i, m, _mm512_mask_blend_ps(positive, expm1_16(v), v));
    }
  }
}


/* GELU of n contiguous numbers (the LM's feed-forward), in place or not; each thread takes one
 * contiguous share, so a product just written by the same threads is read from their own caches. */
void wavecraft_gelu(const float *x, float *y, int64_t n) {
  #pragma omp parallel
  {
    int nt = omp_get_num_threads(), id = omp_get_thread_num();
    int64_t lo = n * id / nt / 16 * 16, hi = id == nt - 1 ? n : n * (id + 1) / nt / 16 * 16;
    gelu_span(x + lo, y + lo, hi - lo);
  }
}
