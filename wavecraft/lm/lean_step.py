"""The single-position decode step with the fewest PyTorch calls, planned once per generation.

A decode step at batch 1-2 reads every weight once and does little else, but each PyTorch call
also costs microseconds of dispatch, and `TransformerLayer.step` goes through ~60 of them per
layer (module calls, `F.linear`'s transposes, views, separate residual adds): ~8 ms per step at
24 layers, measured on a 2-core CPU. `LeanStep` gathers what every layer needs once (transposed
weight views, norm parameters, its KV buffers, the cross-attention folded with the condition)
and runs one position as ~15 calls per layer:

    h = LN1(x);  q, k, v = h Wqkv;  cache[t] = k, v;  a = attend(q, K[:t+1], V[:t+1]);  x += a Wo
    h = LNc(x);  x += softmax_s(h A_b + mask_b) C_b                  (folded cross-attention)
    h = LN2(x);  x += GELU(h W1) W2                                  (GELU in C: in the int8 kernel, or in place)

with every residual add fused into its matrix product (`torch.addmm`), and `attend` the C
decode-attention kernel (wavecraft/kernels/attention.c) where it applies, SDPA elsewhere.

Folded cross-attention. The condition is fixed for the whole generation, so per batch row b the
query projection folds into the keys, A_b[d, (h, s)] = sum_j Wq[h*hd + j, d] K[b, h, s, j] / sqrt(hd),
and the values into the output projection, C_b[(h, s), :] = V[b, h, s] Wo[:, h*hd:(h+1)*hd]^T.
A step then reads 2 * B * H * S * D numbers instead of Wq's and Wo's 2 * D * D, so the fold is used
when B * H * S < D, for plain (unquantised) layers without biases. The maths is the same up to
float summation order. Rows of the null condition (classifier-free guidance) have all-zero values,
so cross-attention adds exactly zero to them: they are skipped, and B counts the conditional rows
only (one prompt at musicgen-small's shape: folded up to 63 text tokens).

Quantised linear layers are called as they are (their kernels are the product); everything else
is the same plan. Where the model allows it (int8 or fp32 weights, MusicGen's layer shapes) the
whole step is one C call instead (`FusedStep`, wavecraft/lm/fused_step.py, built from this plan's
folds, which it copies: the plan is then dropped; `fused=False` keeps the Python-driven step).
`LeanStep` is for inference only and is rebuilt for every `DecodeState`.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..kernels import attention_decode, gelu
from .fused_step import Fold, FusedStep
from .transformer import CrossKV, KVCache, Rotary, Transformer, TransformerLayer, _attend

Tensor = torch.Tensor


def _attention() -> Callable[[Tensor, Tensor, Tensor, Tensor | None], Tensor]:
    """(q, k, v, mask) -> attention of one query position: the C kernel where it takes the
    inputs (CPU, fp32 queries; wavecraft/kernels/attention.c), else SDPA."""
    kernel = attention_decode()
    if kernel is None:
        return lambda q, k, v, mask: _attend(q, k, v, mask, False)

    def attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        out = kernel(q, k, v, mask)
        return _attend(q, k, v, mask, False) if out is None else out

    return attend


def _product(linear: nn.Module) -> Callable[[Tensor], Tensor]:
    """h -> linear(h) for 2-D h, with the fewest calls the layer allows."""
    if type(linear) is nn.Linear:
        weight_t, bias = linear.weight.t(), linear.bias
        if bias is None:
            return lambda h: torch.mm(h, weight_t)
        return lambda h: torch.addmm(bias, h, weight_t)
    direct = getattr(linear, "product_2d", None)  # quantised layers: their kernel, called directly
    return (direct() if direct is not None else None) or linear.forward


def _gelu_product(linear: nn.Module) -> Callable[[Tensor], Tensor]:
    """h -> GELU(linear(h)): inside the int8 kernel, or the C GELU in place over a fresh fp32
    product (PyTorch's GELU costs ~50 us a call here, cache-cold between the weight streams), else
    `F.gelu`."""
    fused = getattr(linear, "product_2d_gelu", None)
    fused = fused() if fused is not None else None
    if fused is not None:
        return fused
    forward, in_place = _product(linear), gelu()
    if in_place is None or type(linear) is not nn.Linear or linear.weight.dtype != torch.float32:
        return lambda h: F.gelu(forward(h))
    return lambda h: in_place(forward(h))


def _residual_product(linear: nn.Module) -> Callable[[Tensor, Tensor], Tensor]:
    """(x, h) -> x + linear(h), the add fused into the product where the layer allows it."""
    if type(linear) is nn.Linear and linear.bias is None:
        weight_t = linear.weight.t()
        return lambda x, h: torch.addmm(x, h, weight_t)
    forward = _product(linear)
    return lambda x, h: x + forward(h)


class _FoldedCross:
    """Cross-attention of one layer against a fixed condition as two batched products."""

    def __init__(self, layer: TransformerLayer, keys: Tensor, values: Tensor, mask: Tensor | None) -> None:
        attn = layer.cross_attn
        assert attn is not None
        B, H, S, hd = keys.shape
        D = H * hd
        dtype = keys.dtype
        wq = attn.q_proj.weight.float().view(H, hd, -1)  # [H, hd, D_in]
        wo = attn.out_proj.weight.float().view(-1, H, hd)  # [D_out, H, hd]
        fold = torch.einsum("hjd,bhsj->bdhs", wq, keys.float()) * hd**-0.5
        self.queries = fold.reshape(B, -1, H * S).to(dtype).contiguous()  # A: [B, D_in, H*S]
        self.outputs = torch.einsum("bhsj,ohj->bhso", values.float(), wo).reshape(B, H * S, -1).to(dtype).contiguous()
        self.bias: Tensor | None = None  # [B, 1, H*S]: -inf where a key is masked
        if mask is not None:
            hidden = ~mask.reshape(B, 1, S).expand(B, H, S)
            self.bias = torch.zeros(B, H, S, dtype=dtype, device=keys.device).masked_fill(hidden, float("-inf"))
            self.bias = self.bias.reshape(B, 1, H * S)
        self.B, self.H, self.D = B, H, D

    def __call__(self, x: Tensor, h: Tensor) -> Tensor:
        h = h.unsqueeze(1)
        scores = torch.bmm(h, self.queries) if self.bias is None else torch.baddbmm(self.bias, h, self.queries)
        probs = torch.softmax(scores.view(self.B, self.H, -1), dim=-1).view(self.B, 1, -1)
        return torch.baddbmm(x.unsqueeze(1), probs, self.outputs).squeeze(1)


class _PlainCross:
    """Cross-attention of one layer through its projections (long conditions, biased or quantised layers)."""

    def __init__(self, layer: TransformerLayer, keys: Tensor, values: Tensor, mask: Tensor | None) -> None:
        attn = layer.cross_attn
        assert attn is not None
        self.query = _product(attn.q_proj)
        self.out = _residual_product(attn.out_proj)
        # contiguous rows per head, as the decode attention kernel reads them (a small copy, once)
        self.keys, self.values, self.mask = keys.contiguous(), values.contiguous(), mask
        self.H, self.hd = keys.shape[1], keys.shape[3]
        self.attend = _attention()

    def __call__(self, x: Tensor, h: Tensor) -> Tensor:
        B = x.shape[0]
        q = self.query(h).view(B, self.H, 1, self.hd)
        a = self.attend(q, self.keys, self.values, self.mask)
        return self.out(x, a.reshape(B, -1))


def _live_rows(layer: TransformerLayer, values: Tensor) -> int:
    """How many leading batch rows cross-attention can change. A row whose values are all zero
    (the null condition of classifier-free guidance, `Transformer.cross_kv`) gets exactly zero
    from attention and, without an output bias, from the output projection: when such rows
    close the batch (the CFG layout [conditional rows; null rows]) they are skipped."""
    attn = layer.cross_attn
    assert attn is not None
    if attn.out_proj.bias is not None:
        return values.shape[0]
    zero = (values.flatten(1) == 0).all(dim=1).tolist()
    live = len(zero)
    while live and zero[live - 1]:
        live -= 1
    return live


class _LiveRows:
    """Cross-attention applied to the leading `live` rows only; the rest pass through unchanged."""

    def __init__(self, inner: Callable[[Tensor, Tensor], Tensor], live: int) -> None:
        self.inner, self.live = inner, live

    def __call__(self, x: Tensor, h: Tensor) -> Tensor:
        n = self.live
        return torch.cat([self.inner(x[:n], h[:n]), x[n:]])


def _fold_pays(layer: TransformerLayer, keys: Tensor) -> bool:
    attn = layer.cross_attn
    assert attn is not None
    plain = all(type(m) is nn.Linear and m.bias is None for m in (attn.q_proj, attn.out_proj))
    B, H, S, hd = keys.shape
    return plain and B * H * S < H * hd


def _fold_of(cross: Callable[[Tensor, Tensor], Tensor] | None) -> Fold | None:
    """A layer plan's folded cross-attention as (A, C, bias), or None where it projects."""
    inner = cross.inner if isinstance(cross, _LiveRows) else cross
    return (inner.queries, inner.outputs, inner.bias) if isinstance(inner, _FoldedCross) else None


class _LayerPlan:
    def __init__(self, layer: TransformerLayer, keys: Tensor, values: Tensor,
                 cross: CrossKV | None, index: int) -> None:
        def norm(ln: nn.LayerNorm) -> Callable[[Tensor], Tensor]:
            shape, weight, bias, eps = ln.normalized_shape, ln.weight, ln.bias, ln.eps
            return lambda x: F.layer_norm(x, shape, weight, bias, eps)

        attn = layer.self_attn
        self.norm1, self.qkv, self.out = norm(layer.norm1), _product(attn.in_proj), _residual_product(attn.out_proj)
        self.keys, self.values = keys, values
        self.H, self.hd = attn.num_heads, attn.head_dim
        self.cross: Callable[[Tensor, Tensor], Tensor] | None = None
        if layer.cross_attn is not None and cross is not None:
            assert layer.norm_cross is not None
            self.norm_cross = norm(layer.norm_cross)
            k, v, mask = cross.keys[index], cross.values[index], cross.mask
            live = _live_rows(layer, v)
            if live:
                k, v, mask = k[:live], v[:live], None if mask is None else mask[:live]
                kind = _FoldedCross if _fold_pays(layer, k) else _PlainCross
                inner = kind(layer, k, v, mask)
                self.cross = inner if live == keys.shape[0] else _LiveRows(inner, live)
        self.norm2 = norm(layer.norm2)
        self.up_gelu, self.down = _gelu_product(layer.linear1), _residual_product(layer.linear2)


class LeanStep:
    """`Transformer.forward` for one position x [B, D] at position t, through a KV cache."""

    def __init__(self, transformer: Transformer, cache: KVCache, cross: CrossKV | None,
                 self_mask: Tensor | None = None, fused: bool = True) -> None:
        self.transformer, self.cache = transformer, cache
        self.self_mask = self_mask  # [B, 1, 1, max_len] bool over key positions, or None
        self.layers = [_LayerPlan(layer, cache.keys[i], cache.values[i], cross, i)
                       for i, layer in enumerate(transformer.layers)]
        self.attend = _attention()
        live = [0 if layer.cross_attn is None or cross is None else _live_rows(layer, cross.values[i])
                for i, layer in enumerate(transformer.layers)]
        folds = [_fold_of(p.cross) for p in self.layers]
        self.fused = FusedStep.build(transformer, cache, cross, live, self_mask, folds) if fused else None
        if self.fused is not None:
            self.layers = []  # the fused step holds its own copies (the folds: up to Wq + Wo a layer)

    def __call__(self, x: Tensor, t: int) -> Tensor:
        tr = self.transformer
        if t + 1 > self.cache.max_len:
            raise ValueError(f"KV cache holds {self.cache.max_len} positions, asked for {t + 1}")
        if tr.positional in ("sin", "sin_rope"):
            x = x + tr.sin_table(t + 1, x.device, x.dtype)[t]
        if self.fused is not None:
            x = self.fused(x, t)
            self.cache.length = t + 1
            return x
        rope = None
        if tr.rotary is not None:
            cos, sin = tr.rotary.tables(t + 1, x.device, x.dtype)
            rope = (cos[t : t + 1], sin[t : t + 1])
        mask = None if self.self_mask is None else self.self_mask[..., : t + 1]
        B = x.shape[0]
        for p in self.layers:
            qkv = p.qkv(p.norm1(x)).view(B, 3, p.H, 1, p.hd)
            q, k, v = qkv[:, 0], qkv[:, 1], qkv[:, 2]
            if rope is not None:
                q, k = Rotary.rotate(q, *rope), Rotary.rotate(k, *rope)
            p.keys[:, :, t : t + 1].copy_(k)
            p.values[:, :, t : t + 1].copy_(v)
            a = self.attend(q, p.keys[:, :, : t + 1], p.values[:, :, : t + 1], mask)
            x = p.out(x, a.view(B, -1))
            if p.cross is not None:
                x = p.cross(x, p.norm_cross(x))
            x = p.down(x, p.up_gelu(p.norm2(x)))
        self.cache.length = t + 1
        return x
