/* A read-bandwidth probe for the benchmarks: the sum of n floats, each thread reading its share
 * as `streams` (1-8) interleaved sequential streams. The decode kernels read four weight rows at
 * once, and several streams per core keep more reads in flight than PyTorch's sum (one stream):
 * 22-25 GB/s against its 19-21 on the 2-core development machine. A bound taken from the slower
 * probe would let a kernel read "faster than the memory". */
#include <stdint.h>
#include <immintrin.h>
#include <omp.h>

double wavecraft_stream_sum(const float *x, int64_t n, int64_t streams) {
  if (streams < 1) streams = 1;
  if (streams > 8) streams = 8;
  double total = 0.0;
  #pragma omp parallel reduction(+ : total)
  {
    int64_t nt = omp_get_num_threads(), id = omp_get_thread_num();
    int64_t lo = n * id / nt, hi = n * (id + 1) / nt;
    int64_t len = (hi - lo) / streams / 16 * 16;
    __m512 acc[8];
    for (int s = 0; s < 8; s++) acc[s] = _mm512_setzero_ps();
    for (int64_t i = 0; i < len; i += 16)
      for (int s = 0; s < streams; s++) acc[s] = _mm512_add_ps(acc[s], _mm512_loadu_ps(x + lo + s * len + i));
    double part = 0.0;
    for (int s = 0; s < 8; s++) part += _mm512_reduce_add_ps(acc[s]);
    for (int64_t i = lo + streams * len; i < hi; i++) part += x[i];
    total += part;
  }
  return total;
}
