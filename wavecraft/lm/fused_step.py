"""The decode step as one C call (wavecraft/kernels/decode_step.c), when the model allows it.

`LeanStep` drives a step from Python in ~15 calls per layer. With int8 weights the products took
only ~20 ms of a ~32 ms musicgen-small step on the 2-core development machine; the calls, their
tensors and the thread team each product starts cost most of the rest, and with fp32 weights
they are ~6 ms of a step the memory bounds at ~60 ms. `FusedStep` gathers every pointer the step
needs (norms, weights, the KV buffers, the cross keys and values or the folded cross-attention)
into one table, once per generation, and runs all layers in one kernel call.

It applies to MusicGen-shaped layers: pre-norm, linear layers without biases that are all
`Int8Linear` (`quantize="int8"`, on a CPU with AVX512-VNNI) or all fp32 `nn.Linear`, layer norms
with one epsilon, no rotary embedding, at most four rows. `build` returns None otherwise, and
`LeanStep` keeps its own path. The int8 arithmetic is that path's (the same product, attention
and GELU code) except the layer norm, which sums in another order; fp32 products and the folded
cross-attention also sum in another order than PyTorch's. Logits agree to ~1e-5 relative.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..kernels import (DECODE_STEP_SLOTS, decode_scratch_size, decode_step, decode_step_fits, decode_step_takes_int8,
                       fold_width)
from .quantize import Int8Linear
from .transformer import CrossKV, KVCache, Transformer

Tensor = torch.Tensor
Fold = tuple[Tensor, Tensor, Tensor | None]  # LeanStep's folded cross-attention: A [b, D, HS], C [b, HS, D], bias


def _weights(linear: nn.Module, fp32: bool) -> tuple[Tensor, Tensor | None] | None:
    """(weight, scales) as the kernel reads them, or None if this layer is not of the step's kind."""
    if getattr(linear, "bias", None) is not None:
        return None
    if fp32:
        ok = type(linear) is nn.Linear and linear.weight.dtype == torch.float32 and linear.weight.is_contiguous()
        return (linear.weight.detach(), None) if ok else None
    if isinstance(linear, Int8Linear) and linear.qweight.is_contiguous():
        return linear.qweight, linear.scales.float().contiguous()
    return None


def _padded_fold(fold: Fold) -> dict[str, Tensor]:
    """A^T [b, HSp, D] and C^T [b, D, HSp], zero-padded to the kernel's width, and the bias [b, HSp]."""
    queries, outputs, bias = fold
    live, _, hs = queries.shape
    pad = fold_width(hs) - hs
    out = {"fold_a": F.pad(queries.float().transpose(1, 2), (0, 0, 0, pad)).contiguous(),
           "fold_c": F.pad(outputs.float().transpose(1, 2), (0, pad)).contiguous()}
    if bias is not None:
        out["fold_bias"] = F.pad(bias.float().reshape(live, hs), (0, pad)).contiguous()
    return out


class FusedStep:
    """All layers of one decode step, x [B, D] at position t, through the C kernel."""

    def __init__(self, transformer: Transformer, cache: KVCache, cross: CrossKV | None, live: int, fp32: bool,
                 self_mask: Tensor | None, table: list[dict[str, Tensor]], eps: float) -> None:
        self.kernel = decode_step()
        self.cache, self.live, self.fp32, self.eps = cache, live, fp32, eps
        self.heads, self.ffn = transformer.num_heads, transformer.layers[0].linear1.out_features
        self.cond_length = 0 if cross is None else cross.keys[0].shape[2]
        self.self_allowed = None if self_mask is None else self_mask[:, 0, 0, :]
        self.cross_keys = table[0].get("cross_k")
        self.cross_allowed = None
        if self.cross_keys is not None and cross is not None and cross.mask is not None:
            self.cross_allowed = cross.mask[:live, 0, 0, :].contiguous()
        self.tensors = table  # keeps every pointer in the table alive
        rows = [[0 if row.get(name) is None else row[name].data_ptr() for name in DECODE_STEP_SLOTS] for row in table]
        self.layers = torch.tensor(rows, dtype=torch.int64)
        B, D = cache.keys[0].shape[0], transformer.dim
        self.scratch = torch.empty(decode_scratch_size(B, D, self.ffn, self.heads * self.cond_length))

    @staticmethod
    def build(transformer: Transformer, cache: KVCache, cross: CrossKV | None, live: list[int],
              self_mask: Tensor | None, folds: list[Fold | None]) -> "FusedStep | None":
        """The fused step for these layers, or None where it does not apply. `live[i]`: the
        leading batch rows whose cross-attention in layer i is not exactly zero (0 without it);
        `folds[i]`: LeanStep's folded cross-attention of layer i, or None where it projects."""
        if decode_step() is None or transformer.rotary is not None or not transformer.layers:
            return None
        B, _, positions, _ = cache.keys[0].shape
        cond_length = 0 if cross is None else cross.keys[0].shape[2]
        ffn = transformer.layers[0].linear1.out_features
        if not decode_step_fits(B, transformer.dim, transformer.num_heads, ffn, positions, cond_length):
            return None
        with_cross = [layer.cross_attn is not None and cross is not None for layer in transformer.layers]
        folded = [fold is not None for fold in folds]
        kernel_dtypes = (torch.float32, torch.bfloat16)
        conditions = [] if cross is None else cross.keys + cross.values  # copied contiguous below
        if (len(set(with_cross)) > 1 or len(set(live)) > 1 or len(set(folded)) > 1
                or any(not (t.is_cpu and t.is_contiguous()) for t in cache.keys + cache.values)
                or any(t.dtype not in kernel_dtypes or not t.is_cpu for t in cache.keys + conditions)):
            return None
        norms = [n for layer in transformer.layers for n in (layer.norm1, layer.norm2, layer.norm_cross)
                 if n is not None]
        if len({n.eps for n in norms}) != 1 or any(n.weight is None or n.weight.dtype != torch.float32 for n in norms):
            return None
        fp32 = type(transformer.layers[0].linear1) is nn.Linear
        if not fp32 and not decode_step_takes_int8():
            return None
        table = []
        for i, layer in enumerate(transformer.layers):
            attn = layer.self_attn
            linears = {"qkv": attn.in_proj, "out": attn.out_proj, "up": layer.linear1, "down": layer.linear2}
            row = {"ln1_w": layer.norm1.weight, "ln1_b": layer.norm1.bias, "ln2_w": layer.norm2.weight,
                   "ln2_b": layer.norm2.bias, "cache_k": cache.keys[i], "cache_v": cache.values[i]}
            if with_cross[i] and live[i]:
                assert layer.norm_cross is not None and layer.cross_attn is not None and cross is not None
                row.update(lnc_w=layer.norm_cross.weight, lnc_b=layer.norm_cross.bias)
                fold = folds[i]
                if fold is not None:
                    row.update(_padded_fold(fold))
                else:
                    linears.update(cq=layer.cross_attn.q_proj, co=layer.cross_attn.out_proj)
                    row.update(cross_k=cross.keys[i][: live[i]].contiguous(),
                               cross_v=cross.values[i][: live[i]].contiguous())
            for name, module in linears.items():
                weights = _weights(module, fp32)
                if weights is None:
                    return None
                row[f"{name}_q"], row[f"{name}_s"] = weights
            table.append({name: t.detach() for name, t in row.items() if t is not None})
        return FusedStep(transformer, cache, cross, live[0], fp32, self_mask, table, norms[0].eps)

    def __call__(self, x: Tensor, t: int) -> Tensor:
        x = x.float().clone(memory_format=torch.contiguous_format)  # the kernel writes it
        self.kernel(x, self.layers, fp32=self.fp32, heads=self.heads, ffn=self.ffn, t=t, cache=self.cache.keys[0],
                    self_allowed=self.self_allowed, live=self.live, cond_length=self.cond_length,
                    cross_keys=self.cross_keys, cross_allowed=self.cross_allowed, eps=self.eps, scratch=self.scratch)
        return x
