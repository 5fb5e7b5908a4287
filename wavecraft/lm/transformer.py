"""The decoder transformer: pre-norm layers with self-attention, optional cross-attention, GELU FFN.

Decoding is memory-bound, so the generation path avoids all per-step allocation it can:
- `KVCache` preallocates [B, H, max_len, head_dim] keys/values per layer; each step writes its new
  keys into the buffer in place and attends over a view of the filled prefix (no torch.cat).
- Cross-attention keys/values over the condition are projected once per generation (`CrossKV`).
- Masks are built once per forward call, not per layer.
Attention is `torch.nn.functional.scaled_dot_product_attention` throughout.

`Transformer.step_static` is the same single-token step with no shape that changes from step to step
and no host-side position: it attends over the whole cache buffer under a boolean mask and reads
its position from a device tensor, so one captured CUDA graph can replay it for every step
(lm/generate.py). The default path attends over the filled prefix only, which is cheaper on CPU.

Layer maths (identical for training and decoding):
    x = x + SelfAttn(LN1(x));  x = x + CrossAttn(LNc(x), cond);  x = x + W2 GELU(W1 LN2(x))
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

POSITIONAL_KINDS = ("sin", "rope", "sin_rope", "none")


def sin_embedding(length: int, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """[length, dim] float32 sinusoidal positions, cos in the first half and sin in the second.

    Frequencies are exp(-i * log(max_period) / (dim/2 - 1)), the tensor2tensor convention that both
    audiocraft and transformers' MusicGen use; this exact float32 recipe keeps parity with the latter.
    """
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32) * -(math.log(max_period) / (half - 1)))
    angles = torch.arange(length, dtype=torch.float32).unsqueeze(1) * freqs.unsqueeze(0)
    emb = torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros(length, 1)], dim=1)
    return emb


class KVCache:
    """Preallocated keys/values for every layer: [B, H, max_len, head_dim] each, written in place."""

    def __init__(
        self, num_layers: int, batch: int, heads: int, max_len: int, head_dim: int,
        device: torch.device | str, dtype: torch.dtype,
    ) -> None:
        shape = (batch, heads, max_len, head_dim)
        self.keys = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(num_layers)]
        self.values = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(num_layers)]
        self.max_len = max_len
        self.length = 0  # positions filled so far
        # Static decoding only (`make_static`): the position as a device tensor and the keys a
        # query may attend to, both updated in place by `Transformer.step_static`.
        self.position: torch.Tensor | None = None
        self.attend: torch.Tensor | None = None

    def make_static(self, key_mask: torch.Tensor | None = None) -> None:
        """Prepare for `Transformer.step_static` from the current length on. key_mask [B, max_len]
        bool hides padded prefix positions (as `Transformer.forward`'s key_mask)."""
        device = self.keys[0].device
        batch = self.keys[0].shape[0]
        self.position = torch.tensor([self.length], dtype=torch.long, device=device)
        attend = torch.zeros(batch, 1, 1, self.max_len, dtype=torch.bool, device=device)
        attend[..., : self.length] = True
        if key_mask is not None:
            attend &= key_mask[:, None, None, : self.max_len].to(device)
        self.attend = attend


@dataclass
class CrossKV:
    """Cross-attention keys/values per layer, projected once from the condition, plus its mask."""

    keys: list[torch.Tensor]  # each [B, H, S_cond, head_dim]
    values: list[torch.Tensor]
    mask: torch.Tensor | None  # [B, 1, 1, S_cond] bool (True = attend), None when nothing is masked


class Rotary(nn.Module):
    """Rotary position embedding on consecutive pairs of channels (audiocraft's convention)."""

    def __init__(self, head_dim: int, max_period: float = 10000.0) -> None:
        super().__init__()
        self.head_dim, self.max_period = head_dim, max_period
        self.register_buffer("inv_freq", torch.empty(head_dim // 2), persistent=False)
        self.init_inv_freq(self.inv_freq.device)

    def init_inv_freq(self, device: torch.device | str) -> None:
        """Compute the frequencies (again: a model built on the meta device has none)."""
        exponents = torch.arange(0, self.head_dim, 2, dtype=torch.float32, device="cpu") / self.head_dim
        self.inv_freq = (1.0 / (self.max_period ** exponents)).to(device)  # CPU maths: see LMModel
        self._cos = torch.empty(0)
        self._sin = torch.empty(0)

    def tables(self, length: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        if self._cos.shape[0] < length or self._cos.device != device or self._cos.dtype != dtype:
            n = max(length, 2 * self._cos.shape[0])
            angles = torch.arange(n, dtype=torch.float32, device=device)[:, None] * self.inv_freq.to(device)[None]
            self._cos, self._sin = angles.cos().to(dtype), angles.sin().to(dtype)
        return self._cos, self._sin

    @staticmethod
    def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """x [B, H, T, hd]; cos/sin [T, hd/2] already sliced to the positions of x."""
        even, odd = x[..., 0::2], x[..., 1::2]
        return torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1).flatten(-2)


@dataclass
class StepContext:
    """What every layer needs for one forward call; built once per call by `Transformer`."""

    start: int
    self_mask: torch.Tensor | None
    is_causal: bool
    cache: KVCache | None
    cross: CrossKV | None
    cross_src: torch.Tensor | None  # condition for cross-attention when no CrossKV was precomputed
    rope: tuple[torch.Tensor, torch.Tensor] | None
    position: torch.Tensor | None = None  # static step: [1] long, where to write in the cache


class SelfAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, bias: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.in_proj = nn.Linear(dim, 3 * dim, bias=bias)  # fused q, k, v: one matmul per step
        self.out_proj = nn.Linear(dim, dim, bias=bias)

    def forward(self, x: torch.Tensor, ctx: StepContext, layer: int) -> torch.Tensor:
        B, T, _ = x.shape
        q, k, v = self.in_proj(x).view(B, T, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        if ctx.rope is not None:
            cos, sin = ctx.rope
            q, k = Rotary.rotate(q, cos, sin), Rotary.rotate(k, cos, sin)
        if ctx.cache is not None:
            end = ctx.start + T
            kbuf, vbuf = ctx.cache.keys[layer], ctx.cache.values[layer]
            kbuf[:, :, ctx.start:end] = k
            vbuf[:, :, ctx.start:end] = v
            k, v = kbuf[:, :, :end], vbuf[:, :, :end]
        out = _attend(q, k, v, ctx.self_mask, ctx.is_causal)
        return self.out_proj(out.transpose(1, 2).reshape(B, T, -1))

    def step(self, x: torch.Tensor, ctx: StepContext, layer: int) -> torch.Tensor:
        """`forward` for one position, x [B, D] (decoding: 2-D matmuls, fewest ops per step)."""
        B = x.shape[0]
        q, k, v = self.in_proj(x).view(B, 3, self.num_heads, 1, self.head_dim).unbind(1)
        if ctx.rope is not None:
            cos, sin = ctx.rope
            q, k = Rotary.rotate(q, cos, sin), Rotary.rotate(k, cos, sin)
        kbuf, vbuf = ctx.cache.keys[layer], ctx.cache.values[layer]  # type: ignore[union-attr]
        if ctx.position is not None:  # static step: write in place, attend over the whole buffer
            kbuf.index_copy_(2, ctx.position, k.to(kbuf.dtype))
            vbuf.index_copy_(2, ctx.position, v.to(vbuf.dtype))
            k, v = kbuf, vbuf
        else:
            kbuf[:, :, ctx.start : ctx.start + 1] = k
            vbuf[:, :, ctx.start : ctx.start + 1] = v
            k, v = kbuf[:, :, : ctx.start + 1], vbuf[:, :, : ctx.start + 1]
        out = _attend(q, k, v, ctx.self_mask, False)
        return self.out_proj(out.reshape(B, -1))


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, causal: bool) -> torch.Tensor:
    """SDPA; a cache stored in another dtype (bfloat16 for quantised models) sets the dtype of
    the attention itself, the result comes back in the query's."""
    if k.dtype == q.dtype:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
    return F.scaled_dot_product_attention(q.to(k.dtype), k, v, attn_mask=mask, is_causal=causal).to(q.dtype)


class CrossAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, bias: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.q_proj = nn.Linear(dim, dim, bias=bias)
        self.kv_proj = nn.Linear(dim, 2 * dim, bias=bias)
        self.out_proj = nn.Linear(dim, dim, bias=bias)

    def project_kv(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, S, _ = cond.shape
        k, v = self.kv_proj(cond).view(B, S, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        return k, v

    def forward(self, x: torch.Tensor, ctx: StepContext, layer: int) -> torch.Tensor:
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.num_heads, self.head_dim).transpose(1, 2)
        if ctx.cross is not None:
            k, v, mask = ctx.cross.keys[layer], ctx.cross.values[layer], ctx.cross.mask
        else:
            assert ctx.cross_src is not None
            k, v = self.project_kv(ctx.cross_src)
            mask = None
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out_proj(out.transpose(1, 2).reshape(B, T, -1))

    def step(self, x: torch.Tensor, ctx: StepContext, layer: int) -> torch.Tensor:
        """`forward` for one position x [B, D] against precomputed cross keys/values."""
        B = x.shape[0]
        q = self.q_proj(x).view(B, self.num_heads, 1, self.head_dim)
        cross = ctx.cross
        assert cross is not None
        out = F.scaled_dot_product_attention(q, cross.keys[layer], cross.values[layer], attn_mask=cross.mask)
        return self.out_proj(out.reshape(B, -1))


class TransformerLayer(nn.Module):
    def __init__(
        self, dim: int, num_heads: int, ffn_dim: int, cross_attention: bool,
        bias_attn: bool, bias_ff: bool, norm_eps: float, dropout: float,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.self_attn = SelfAttention(dim, num_heads, bias_attn)
        self.norm_cross = nn.LayerNorm(dim, eps=norm_eps) if cross_attention else None
        self.cross_attn = CrossAttention(dim, num_heads, bias_attn) if cross_attention else None
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.linear1 = nn.Linear(dim, ffn_dim, bias=bias_ff)
        self.linear2 = nn.Linear(ffn_dim, dim, bias=bias_ff)
        self.dropout = dropout

    def _drop(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.dropout, training=True) if self.dropout and self.training else x

    def forward(self, x: torch.Tensor, ctx: StepContext, layer: int) -> torch.Tensor:
        x = x + self._drop(self.self_attn(self.norm1(x), ctx, layer))
        if self.cross_attn is not None and (ctx.cross is not None or ctx.cross_src is not None):
            x = x + self._drop(self.cross_attn(self.norm_cross(x), ctx, layer))
        return x + self._drop(self.linear2(F.gelu(self.linear1(self.norm2(x)))))

    def step(self, x: torch.Tensor, ctx: StepContext, layer: int) -> torch.Tensor:
        """`forward` for one decoded position, x [B, D], with a KV cache (inference only)."""
        x = x + self.self_attn.step(self.norm1(x), ctx, layer)
        if self.cross_attn is not None and ctx.cross is not None:
            x = x + self.cross_attn.step(self.norm_cross(x), ctx, layer)
        return x + self.linear2(F.gelu(self.linear1(self.norm2(x))))


class Transformer(nn.Module):
    """A stack of `TransformerLayer`s with positional encoding (input and output are [B, T, D])."""

    def __init__(
        self, dim: int, num_heads: int, num_layers: int, ffn_dim: int, cross_attention: bool = True,
        bias_attn: bool = False, bias_ff: bool = False, norm_eps: float = 1e-5, dropout: float = 0.0,
        positional: str = "sin", max_period: float = 10000.0,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} must be divisible by num_heads {num_heads}")
        if positional not in POSITIONAL_KINDS:
            raise ValueError(f"unknown positional embedding {positional!r}; choose one of {POSITIONAL_KINDS}")
        self.dim, self.num_heads, self.head_dim = dim, num_heads, dim // num_heads
        self.positional, self.max_period = positional, max_period
        self.layers = nn.ModuleList(
            TransformerLayer(dim, num_heads, ffn_dim, cross_attention, bias_attn, bias_ff, norm_eps, dropout)
            for _ in range(num_layers)
        )
        self.rotary = Rotary(self.head_dim, max_period) if "rope" in positional else None
        self._sin = torch.empty(0)

    def sin_table(self, length: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """Sinusoidal positions, cached and grown on demand (one allocation per longer request)."""
        if self._sin.shape[0] < length or self._sin.device != device or self._sin.dtype != dtype:
            self._sin = sin_embedding(max(length, 2 * self._sin.shape[0]), self.dim, self.max_period).to(device, dtype)
        return self._sin

    def new_cache(self, batch: int, max_len: int, device: torch.device, dtype: torch.dtype) -> KVCache:
        return KVCache(len(self.layers), batch, self.num_heads, max_len, self.head_dim, device, dtype)

    def cross_kv(self, cond: torch.Tensor, mask: torch.Tensor | None = None) -> CrossKV:
        """Project the condition [B, S, D] to keys/values for every layer, once per generation.

        mask [B, S] bool marks positions to attend to. A row with nothing valid (the null condition
        of classifier-free guidance) gets zero values and is left unmasked: it then contributes
        exactly zero, where a fully masked row would make softmax produce NaN.
        """
        keys, values = [], []
        empty = None
        attn_mask = None
        if mask is not None and not bool(mask.all()):
            empty = ~mask.any(dim=1)  # [B]
            attn_mask = (mask | empty[:, None])[:, None, None, :]
            if bool(attn_mask.all()):
                attn_mask = None  # e.g. one prompt and its null row: SDPA is faster without a mask
        for layer in self.layers:
            if layer.cross_attn is None:
                raise ValueError("this transformer has no cross-attention layers")
            k, v = layer.cross_attn.project_kv(cond)
            if empty is not None and bool(empty.any()):
                v = v.masked_fill(empty[:, None, None, None], 0.0)
            keys.append(k)
            values.append(v)
        return CrossKV(keys, values, attn_mask)

    def forward(
        self,
        x: torch.Tensor,
        start: int = 0,
        cache: KVCache | None = None,
        cross: CrossKV | torch.Tensor | None = None,
        key_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x [B, T, D] at positions [start, start+T) -> [B, T, D].

        cache: when given, keys/values are written at [start, start+T) and attention covers [0, start+T).
        cross: precomputed `CrossKV`, or a raw condition tensor [B, S, D] (training path, no mask).
        key_mask: [B, >= start+T] bool over key positions (False = padding never attended).
        """
        B, T, _ = x.shape
        end = start + T
        if self.positional in ("sin", "sin_rope"):
            x = x + self.sin_table(end, x.device, x.dtype)[start:end]
        rope = None
        if self.rotary is not None:
            cos, sin = self.rotary.tables(end, x.device, x.dtype)
            rope = (cos[start:end], sin[start:end])
        if cache is not None and end > cache.max_len:
            raise ValueError(f"KV cache holds {cache.max_len} positions, asked for {end}")
        kv_len = end if cache is not None else T
        self_mask = None
        is_causal = False
        if key_mask is not None:
            self_mask = key_mask[:, None, None, :kv_len]
        if T > 1:
            if self_mask is None and (cache is None or start == 0):
                is_causal = True  # SDPA's causal mask is aligned top-left: right when q and k start together
            else:
                q_pos = torch.arange(kv_len - T, kv_len, device=x.device)[:, None]
                k_pos = torch.arange(kv_len, device=x.device)[None, :]
                causal = q_pos >= k_pos
                if self_mask is not None:
                    # A padded query still sees itself, so no row is fully masked (that gives NaN,
                    # which would leak into later steps); padded keys stay hidden from everyone else.
                    self_mask = (self_mask | (q_pos == k_pos)) & causal
                else:
                    self_mask = causal
        ctx = StepContext(
            start=start, self_mask=self_mask, is_causal=is_causal, cache=cache,
            cross=cross if isinstance(cross, CrossKV) else None,
            cross_src=cross if isinstance(cross, torch.Tensor) else None, rope=rope,
        )
        if T == 1 and cache is not None and ctx.cross_src is None and not self.training:
            x = self._steps(x[:, 0], ctx)[:, None]  # decoding one position: the lean 2-D path
        else:
            for i, layer in enumerate(self.layers):
                x = layer(x, ctx, i)
        if cache is not None:
            cache.length = end
        return x

    def _steps(self, x: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer.step(x, ctx, i)
        return x

    def step_static(self, x: torch.Tensor, cache: KVCache, cross: CrossKV | None = None) -> torch.Tensor:
        """One decode step x [B, 1, D] at position `cache.position` (after `cache.make_static`).

        Every tensor shape and every index stays the same from one step to the next (the position
        is read from, and advanced in, a device tensor), which is what CUDA graph replay needs. The
        host-side `cache.length` is left to the caller. Same maths as `forward`: masked keys get
        exactly zero weight, so only float summation order differs.
        """
        if cache.position is None or cache.attend is None:
            raise ValueError("call cache.make_static() before step_static")
        pos = cache.position
        if self.positional in ("sin", "sin_rope"):
            x = x + self.sin_table(cache.max_len, x.device, x.dtype).index_select(0, pos)
        rope = None
        if self.rotary is not None:
            cos, sin = self.rotary.tables(cache.max_len, x.device, x.dtype)
            rope = (cos.index_select(0, pos), sin.index_select(0, pos))
        cache.attend.index_fill_(-1, pos, True)
        ctx = StepContext(start=0, self_mask=cache.attend, is_causal=False, cache=cache, cross=cross,
                          cross_src=None, rope=rope, position=pos)
        x = self._steps(x[:, 0], ctx)[:, None]
        pos.add_(1)
        return x
