/* Attention of one query position against a KV cache, for decoding:
 *   out[b, h] = softmax(scale * q[b, h] . K[b, h, :n]^T + mask) V[b, h, :n]
 * with fp32 queries and output and an fp32 or bfloat16 cache ([B, H, L, hd] with rows of hd
 * contiguous numbers, any strides between heads and batch rows). PyTorch's CPU attention is built
 * for many queries: at one query its fixed cost is several times the time to read the cache
 * (~75 us for 23 keys; ~200-280 us for 250 bfloat16 positions, 2 MB, which memory delivers in
 * ~100 us), and it converts the query and the result between dtypes. This walks each (b, h)
 * pair's keys once for the scores, once for the values, on PyTorch's threads. */
#include <stdint.h>
#include "attention_pair.h"

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
    attend_pair(qp, (const char *)k + off * (bf16 ? 2 : 4), (const char *)v + off * (bf16 ? 2 : 4), n, hd, scale, al,
                scores, op, bf16);
  }
  return 0;
}
