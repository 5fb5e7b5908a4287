/* One decode step of a whole pre-norm transformer, in one call:
 *
 *   for each layer:  x += Wo attend(q, K[:t+1], V[:t+1])   with q, k, v = Wqkv LN1(x), k and v written at t
 *                    x[:live] += cross-attention of LNc(x[:live])                   (if the layer has it)
 *                    x += Wdown GELU(Wup LN2(x))
 *
 * for B <= 4 rows (up to two prompts and their classifier-free-guidance null rows), with int8
 * weights (and fp32 scales) or fp32 weights. Driving the same step from Python costs ~15 calls
 * per layer, ~6 ms a step at musicgen-small's 24 layers on a 2-core machine (a quarter of an int8
 * step), and every product opens and closes its own thread team. Here one team runs the whole step, meeting at a
 * barrier between dependent phases. The int8 products, the attention and GELU are the same code
 * as the separate kernels (int8_rows.h, attention_pair.h, vecmath.h); the fp32 products, the
 * layer norm and the folded cross-attention sum in another order than PyTorch.
 *
 * Cross-attention is either through the projections (Wcq, then attention over the cross keys and
 * values, then Wco) or folded (see wavecraft/lm/lean_step.py): scores = A_b^T h, a softmax per
 * head over its S keys (plus a -inf bias where masked), x += C_b^T p, with A_b^T [HSp, D] and
 * C_b^T [D, HSp] fp32 per live row, HSp = H * S rounded up to 16 (padding rows and columns zero).
 *
 * Needs AVX512-VNNI for int8 (activations as two int8 pieces), no biases in the linear layers,
 * D and F multiples of 64 up to VNNI_MAX_K, a head size of 32, 64 or 128, a KV cache [B, H, L, hd]
 * in fp32 or bfloat16 and cross keys/values [live, H, S, hd] contiguous, fp32 or bfloat16. */
#include <math.h>
#include <stdint.h>
#include <immintrin.h>
#include <omp.h>
#include "vecmath.h"
#include "int8_rows.h"
#include "attention_pair.h"

/* pointer slots of one layer in the `layers` table (0: absent; the cross slots all absent or all set) */
enum { LN1_W, LN1_B, QKV_Q, QKV_S, OUT_Q, OUT_S, LNC_W, LNC_B, CQ_Q, CQ_S, CO_Q, CO_S, CROSS_K, CROSS_V,
       LN2_W, LN2_B, UP_Q, UP_S, DOWN_Q, DOWN_S, CACHE_K, CACHE_V, FOLD_A, FOLD_C, FOLD_BIAS, SLOTS };

int wavecraft_decode_slots(void) { return SLOTS; }

/* layer norm of M rows of D numbers (two passes over each row, fp32 lanes) */
static void layer_norm(const float *x, int64_t M, int64_t D, const float *w, const float *b, float eps, float *out) {
    for (int64_t m = 0; m < M; m++) {
        const float *r = x + m * D;
        __m512 acc = _mm512_setzero_ps();
        for (int64_t i = 0; i < D; i += 16) acc = _mm512_add_ps(acc, _mm512_loadu_ps(r + i));
        float mean = _mm512_reduce_add_ps(acc) / (float)D;
        __m512 mu = _mm512_set1_ps(mean);
        acc = _mm512_setzero_ps();
        for (int64_t i = 0; i < D; i += 16) {
            __m512 d = _mm512_sub_ps(_mm512_loadu_ps(r + i), mu);
            acc = _mm512_fmadd_ps(d, d, acc);
        }
        __m512 rstd = _mm512_set1_ps(1.0f / sqrtf(_mm512_reduce_add_ps(acc) / (float)D + eps));
        for (int64_t i = 0; i < D; i += 16) {
            __m512 y = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(r + i), mu), rstd);
            if (w) y = _mm512_mul_ps(y, _mm512_loadu_ps(w + i));
            if (b) y = _mm512_add_ps(y, _mm512_loadu_ps(b + i));
            _mm512_storeu_ps(out + m * D + i, y);
        }
    }
}

/* fp32 -> bfloat16, rounding to nearest even (as PyTorch's conversion) */
static inline uint16_t to_bf16(float f) {
    union { float f; uint32_t u; } v = {f};
    if (f != f) return 0x7FC0;
    return (uint16_t)((v.u + 0x7FFF + ((v.u >> 16) & 1)) >> 16);
}

static void store_row(const float *src, void *dst, int64_t n, int64_t bf16) {
    if (bf16)
        for (int64_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = to_bf16(src[i]);
    else
        for (int64_t i = 0; i < n; i++) ((float *)dst)[i] = src[i];
}


ROWS4(f32_rows4, float, _mm512_loadu_ps)  /* four fp32 weight rows (int8_rows.h) */

/* outputs [4 lo, 4 hi) of x [M, K] times fp32 w [N, K]^T into y [M, N] (added to it when
 * accumulate); rows beyond two by pairs, as vnni_span */
static void f32_span(const float *x, int64_t M, const float *w, float *y, int64_t N, int64_t K, int64_t lo, int64_t hi,
                     int accumulate) {
    int64_t ahead = (4 * K > 4096 ? 4 * K : 4096);  /* floats: the next block of four rows */
    for (int64_t b = lo; b < hi; b++) {
        int64_t o = 4 * b;
        for (int64_t m0 = 0; m0 < M; m0 += 2) {
            float acc[8];
            int64_t pair = M - m0 < 2 ? M - m0 : 2;
            f32_rows4(x + m0 * K, pair, w + o * K, K, acc, ahead);
            for (int64_t i = 0; i < pair; i++)
                for (int j = 0; j < 4; j++) {
                    float *out = y + (m0 + i) * N + o + j;
                    *out = accumulate ? *out + acc[i * 4 + j] : acc[i * 4 + j];
                }
        }
    }
}

/* The int8 pieces: kept out of line, so that only these functions carry the VNNI target and the
 * step itself (and its fp32 path) runs on AVX-512 CPUs without VNNI. */
VNNI __attribute__((noinline)) static void split_rows(const float *in, int64_t M, int64_t K, uint8_t *xq, float (*s)[2]) {
    for (int64_t m = 0; m < M; m++) split_row(in + m * K, K, xq + m * 2 * K, s[m]);
}

VNNI __attribute__((noinline)) static void int8_product(const int8_t *q, const float *scale, const uint8_t *xq,
                                                        float (*s)[2], int64_t M, float *y, int64_t N, int64_t K,
                                                        int64_t lo, int64_t hi, int accumulate) {
    vnni_span(xq, (const float (*)[2])s, M, q, scale, 0, y, N, K, lo, hi, accumulate);
}

/* the M input rows a product needs: their int8 pieces for int8 weights, nothing for fp32 */
static void prepare(int64_t fp32, const float *in, int64_t M, int64_t K, uint8_t *xq, float (*s)[2]) {
    if (!fp32) split_rows(in, M, K, xq, s);
}

/* this thread's outputs [4 lo, 4 hi) of in [M, K] times the layer's weight in `slot` */
static void product(int64_t fp32, const int64_t *layer, int slot, const float *in, const uint8_t *xq, float (*s)[2],
                    int64_t M, float *y, int64_t N, int64_t K, int64_t lo, int64_t hi, int accumulate) {
    if (fp32)
        f32_span(in, M, (const float *)(intptr_t)layer[slot], y, N, K, lo, hi, accumulate);
    else
        int8_product((const int8_t *)(intptr_t)layer[slot], (const float *)(intptr_t)layer[slot + 1], xq, s, M, y, N,
                     K, lo, hi, accumulate);
}

/* How the threads share a product's output blocks (4 rows each): each first takes its static
 * share of the leading 3/4, read in order with its prefetches; the last quarter goes in 4 * nt
 * chunks to whichever thread asks first, so a core slowed by a neighbour takes fewer instead of
 * making the other wait at the barrier. With a static split each thread spent 2-7 % of an fp32
 * step and 5-10 % of an int8 one waiting at barriers; alternated in one process, generation with
 * this split was 0-2 % faster in fp32 and the same within the noise in int8 (2026-12-02).
 * Every output row is summed the same way whoever takes it. Successive products use the two
 * tickets in turn; each product resets the next one's, whose last use ended at the barrier
 * before it. */
typedef struct { int64_t lo, hi, tail, chunk, chunks; int64_t *ticket; int in_static; } share_t;

static inline share_t share_blocks(int64_t blocks, int64_t id, int64_t nt, int64_t *tickets, int64_t *seq) {
    int64_t head = blocks - blocks / 4, chunks = 4 * nt, n = *seq;
    share_t sh = { head * id / nt, head * (id + 1) / nt, head, (blocks - head + chunks - 1) / chunks, chunks,
                   tickets + (n & 1), 1 };
    if (id == 0) __atomic_store_n(tickets + ((n + 1) & 1), 0, __ATOMIC_RELAXED);
    *seq = n + 1;
    return sh;
}

/* the next range [lo, hi) of blocks for this thread; 0 when the product is done */
static inline int next_blocks(share_t *sh, int64_t blocks, int64_t *lo, int64_t *hi) {
    if (sh->in_static) {
        sh->in_static = 0;
        if (sh->hi > sh->lo) { *lo = sh->lo; *hi = sh->hi; return 1; }
    }
    for (;;) {
        int64_t c = __atomic_fetch_add(sh->ticket, 1, __ATOMIC_RELAXED);
        if (c >= sh->chunks) return 0;
        *lo = sh->tail + c * sh->chunk;
        *hi = *lo + sh->chunk < blocks ? *lo + sh->chunk : blocks;
        if (*lo < *hi) return 1;
    }
}

/* in [M, K] times the layer's weight in `slot`, all N outputs, shared out among the threads as
 * above (GELU on each range as it is finished, still in the cache); a barrier follows */
static void shared_product(int64_t fp32, const int64_t *layer, int slot, const float *in, const uint8_t *xq,
                           float (*s)[2], int64_t M, float *y, int64_t N, int64_t K, int accumulate, int gelu,
                           int64_t id, int64_t nt, int64_t *tickets, int64_t *seq) {
    share_t sh = share_blocks(N / 4, id, nt, tickets, seq);
    for (int64_t lo, hi; next_blocks(&sh, N / 4, &lo, &hi);) {
        product(fp32, layer, slot, in, xq, s, M, y, N, K, lo, hi, accumulate);
        if (gelu)
            for (int64_t m = 0; m < M; m++) gelu_span(y + m * N + 4 * lo, y + m * N + 4 * lo, 4 * (hi - lo));
    }
}

/* softmax over each head's S scores of `live` rows of HSp, after adding the bias; padding zeroed */
static void fold_softmax(float *sc, const float *bias, int64_t live, int64_t H, int64_t S, int64_t HSp) {
    for (int64_t b = 0; b < live; b++) {
        float *r = sc + b * HSp;
        for (int64_t head = 0; head < H; head++) {
            float *p = r + head * S, best = -INFINITY, sum = 0.0f;
            for (int64_t j = 0; j < S; j++) {
                if (bias) p[j] += bias[b * HSp + head * S + j];
                best = p[j] > best ? p[j] : best;
            }
            for (int64_t j = 0; j < S; j++) sum += (p[j] = expf(p[j] - best));
            for (int64_t j = 0; j < S; j++) p[j] /= sum;
        }
        for (int64_t j = H * S; j < HSp; j++) r[j] = 0.0f;
    }
}

#define PTR(slot, T) ((T)(intptr_t)layer[slot])

/* x [B, D] is updated in place. layers [L][SLOTS]; fp32: 1 for fp32 weights (the *_S slots unused),
 * 0 for int8; t: the position written and attended up to; cache strides kv_b, kv_h in elements
 * (positions at stride hd); allowed: self-attention key flags [B, >= t + 1] at stride ab (0: one
 * row for all) or NULL; cross: live leading rows, S keys, flags [live, S] at stride cab or NULL
 * (through the projections; a folded layer has its mask in FOLD_BIAS); scratch: at least
 * 5 * B * D + B * F + B * HSp floats, then 2 * B * max(D, F) bytes. Returns 1 for what it does not
 * handle, 0 on success. */
int wavecraft_decode_step(float *x, int64_t B, int64_t D, int64_t H, int64_t F, int64_t L, const int64_t *layers,
                          int64_t fp32, int64_t t, int64_t kv_b, int64_t kv_h, int64_t kv_bf16,
                          const uint8_t *allowed, int64_t ab, int64_t live, int64_t S,
                          const uint8_t *cross_allowed, int64_t cab, int64_t cross_bf16, float eps,
                          float *scratch) {
    int64_t hd = D / H, HSp = (H * S + 15) / 16 * 16;
    if (B < 1 || B > MAX_ROWS || live < 0 || live > B || D % 64 || F % 64 || D > VNNI_MAX_K || F > VNNI_MAX_K
        || D != H * hd || (hd != 32 && hd != 64 && hd != 128) || t < 0 || t + 1 > MAX_POSITIONS
        || S > MAX_POSITIONS || (!fp32 && !__builtin_cpu_supports("avx512vnni")))
        return 1;
    float *h = scratch, *att = h + B * D, *qkv = att + B * D, *ff = qkv + 3 * B * D, *sc = ff + B * F;
    uint8_t *xq = (uint8_t *)(sc + B * HSp);
    float s[MAX_ROWS][2];
    const float scale = 1.0f / sqrtf((float)hd);
    const int64_t kv_size = kv_bf16 ? 2 : 4, cross_size = cross_bf16 ? 2 : 4;
    int64_t tickets[2] = {0, 0};
    #pragma omp parallel
    {
        int64_t nt = omp_get_num_threads(), id = omp_get_thread_num(), seq = 0;
        int64_t lo_d = D / 4 * id / nt, hi_d = D / 4 * (id + 1) / nt;
        int64_t lo_s = HSp / 4 * id / nt, hi_s = HSp / 4 * (id + 1) / nt;
        float scores[MAX_POSITIONS];
        for (int64_t l = 0; l < L; l++) {
            const int64_t *layer = layers + l * SLOTS;
            /* self-attention */
            #pragma omp single
            {
                layer_norm(x, B, D, PTR(LN1_W, const float *), PTR(LN1_B, const float *), eps, h);
                prepare(fp32, h, B, D, xq, s);
            }
            shared_product(fp32, layer, QKV_Q, h, xq, s, B, qkv, 3 * D, D, 0, 0, id, nt, tickets, &seq);
            #pragma omp barrier
            #pragma omp for schedule(dynamic, 2)
            for (int64_t pair = 0; pair < B * H; pair++) {
                int64_t b = pair / H, head = pair % H;
                const float *row = qkv + b * 3 * D + head * hd;
                char *k = PTR(CACHE_K, char *) + (b * kv_b + head * kv_h) * kv_size;
                char *v = PTR(CACHE_V, char *) + (b * kv_b + head * kv_h) * kv_size;
                store_row(row + D, k + t * hd * kv_size, hd, kv_bf16);
                store_row(row + 2 * D, v + t * hd * kv_size, hd, kv_bf16);
                attend_pair(row, k, v, t + 1, hd, scale, allowed ? allowed + b * ab : 0, scores, att + b * D + head * hd,
                            kv_bf16);
            }
            #pragma omp single
            prepare(fp32, att, B, D, xq, s);
            shared_product(fp32, layer, OUT_Q, att, xq, s, B, x, D, D, 1, 0, id, nt, tickets, &seq);
            #pragma omp barrier
            /* cross-attention, leading `live` rows */
            if (live > 0 && (layer[FOLD_A] || layer[CQ_Q])) {
                #pragma omp single
                {
                    layer_norm(x, live, D, PTR(LNC_W, const float *), PTR(LNC_B, const float *), eps, h);
                    if (!layer[FOLD_A]) prepare(fp32, h, live, D, xq, s);
                }
                if (layer[FOLD_A]) {
                    for (int64_t b = 0; b < live; b++)
                        f32_span(h + b * D, 1, PTR(FOLD_A, const float *) + b * HSp * D, sc + b * HSp, HSp, D, lo_s, hi_s, 0);
                    #pragma omp barrier
                    #pragma omp single
                    fold_softmax(sc, PTR(FOLD_BIAS, const float *), live, H, S, HSp);
                    for (int64_t b = 0; b < live; b++)
                        f32_span(sc + b * HSp, 1, PTR(FOLD_C, const float *) + b * D * HSp, x + b * D, D, HSp, lo_d, hi_d, 1);
                } else {
                    shared_product(fp32, layer, CQ_Q, h, xq, s, live, qkv, D, D, 0, 0, id, nt, tickets, &seq);
                    #pragma omp barrier
                    #pragma omp for schedule(dynamic, 2)
                    for (int64_t pair = 0; pair < live * H; pair++) {
                        int64_t b = pair / H, head = pair % H, off = ((b * H + head) * S * hd) * cross_size;
                        attend_pair(qkv + b * D + head * hd, PTR(CROSS_K, const char *) + off,
                                    PTR(CROSS_V, const char *) + off, S, hd, scale,
                                    cross_allowed ? cross_allowed + b * cab : 0, scores, att + b * D + head * hd, cross_bf16);
                    }
                    #pragma omp single
                    prepare(fp32, att, live, D, xq, s);
                    shared_product(fp32, layer, CO_Q, att, xq, s, live, x, D, D, 1, 0, id, nt, tickets, &seq);
                }
                #pragma omp barrier
            }
            /* feed-forward */
            #pragma omp single
            {
                layer_norm(x, B, D, PTR(LN2_W, const float *), PTR(LN2_B, const float *), eps, h);
                prepare(fp32, h, B, D, xq, s);
            }
            shared_product(fp32, layer, UP_Q, h, xq, s, B, ff, F, D, 0, 1, id, nt, tickets, &seq);
            #pragma omp barrier
            #pragma omp single
            prepare(fp32, ff, B, F, xq, s);
            shared_product(fp32, layer, DOWN_Q, ff, xq, s, B, x, D, F, 1, 0, id, nt, tickets, &seq);
            #pragma omp barrier
        }
    }
    return 0;
}
