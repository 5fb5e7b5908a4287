"""The int8 decode step as one C call (wavecraft/kernels/decode_step.c), when the model allows it.

`LeanStep` drives a step from Python in ~15 calls per layer. With int8 weights the products take
only ~20 ms of a ~32 ms musicgen-small step on the 2-core development machine, and the calls,
their tensors and the thread team each product starts cost most of the rest. `Int8Step` gathers
every pointer the step needs (norms, int8 weights and scales, the KV buffers, the cross keys and
values) into one table, once per generation, and runs all layers in one kernel call.

It applies to the shape of MusicGen's layers quantised with `quantize="int8"`: pre-norm layers
whose linear layers are all `Int8Linear` without biases, layer norms with the same epsilon, no
rotary embedding, at most two rows, on a CPU with AVX512-VNNI. `build` returns None otherwise,
and `LeanStep` keeps its own path. The arithmetic is that path's (the same product, attention
and GELU code) except the layer norm, which sums in another order: logits agree to ~1e-5.
"""
from __future__ import annotations

import torch
from torch import nn

from ..kernels import DECODE_STEP_SLOTS, decode_scratch_size, int8_decode_step, int8_decode_step_fits
from .quantize import Int8Linear
from .transformer import CrossKV, KVCache, Transformer

Tensor = torch.Tensor


def _int8(linear: nn.Module) -> Int8Linear | None:
    ok = isinstance(linear, Int8Linear) and linear.bias is None and linear.qweight.is_contiguous()
    return linear if ok else None


class Int8Step:
    """All layers of one int8 decode step, x [B, D] at position t, through the C kernel."""

    def __init__(self, transformer: Transformer, cache: KVCache, cross: CrossKV | None, live: int,
                 self_mask: Tensor | None, table: list[dict[str, Tensor]], eps: float) -> None:
        self.kernel = int8_decode_step()
        self.cache, self.live, self.eps = cache, live, eps
        self.heads, self.ffn = transformer.num_heads, transformer.layers[0].linear1.out_features
        self.self_allowed = None if self_mask is None else self_mask[:, 0, 0, :]
        self.cross_keys = table[0].get("cross_k")
        self.cross_allowed = None
        if cross is not None and cross.mask is not None and live:
            self.cross_allowed = cross.mask[:live, 0, 0, :].contiguous()
        self.tensors = table  # keeps every pointer in the table alive
        rows = [[0 if row.get(name) is None else row[name].data_ptr() for name in DECODE_STEP_SLOTS] for row in table]
        self.layers = torch.tensor(rows, dtype=torch.int64)
        B, D = cache.keys[0].shape[0], transformer.dim
        self.scratch = torch.empty(decode_scratch_size(B, D, self.ffn))

    @staticmethod
    def build(transformer: Transformer, cache: KVCache, cross: CrossKV | None, live: list[int],
              self_mask: Tensor | None) -> "Int8Step | None":
        """The fused step for these layers, or None where it does not apply. `live[i]`: the
        leading batch rows whose cross-attention in layer i is not exactly zero (0 without it)."""
        if int8_decode_step() is None or transformer.rotary is not None or not transformer.layers:
            return None
        B, _, positions, _ = cache.keys[0].shape
        cond_length = 0 if cross is None else cross.keys[0].shape[2]
        ffn = transformer.layers[0].linear1.out_features
        if not int8_decode_step_fits(B, transformer.dim, transformer.num_heads, ffn, positions, cond_length):
            return None
        with_cross = [layer.cross_attn is not None and cross is not None for layer in transformer.layers]
        if B > 2 or len(set(with_cross)) > 1 or len(set(live)) > 1 or any(not (k.is_cpu and k.is_contiguous()) for k in cache.keys + cache.values):
            return None
        norms = [n for layer in transformer.layers for n in (layer.norm1, layer.norm2, layer.norm_cross) if n is not None]
        if len({n.eps for n in norms}) != 1 or any(n.weight is None or n.weight.dtype != torch.float32 for n in norms):
            return None
        table = []
        for i, layer in enumerate(transformer.layers):
            attn = layer.self_attn
            linears = {"qkv": _int8(attn.in_proj), "out": _int8(attn.out_proj), "up": _int8(layer.linear1),
                       "down": _int8(layer.linear2)}
            row = {"ln1_w": layer.norm1.weight, "ln1_b": layer.norm1.bias, "ln2_w": layer.norm2.weight,
                   "ln2_b": layer.norm2.bias, "cache_k": cache.keys[i], "cache_v": cache.values[i]}
            if layer.cross_attn is not None and cross is not None and live[i]:
                assert layer.norm_cross is not None
                linears.update(cq=_int8(layer.cross_attn.q_proj), co=_int8(layer.cross_attn.out_proj))
                row.update(lnc_w=layer.norm_cross.weight, lnc_b=layer.norm_cross.bias,
                           cross_k=cross.keys[i][: live[i]].contiguous(), cross_v=cross.values[i][: live[i]].contiguous())
            if any(module is None for module in linears.values()):
                return None
            for name, module in linears.items():
                row[f"{name}_q"], row[f"{name}_s"] = module.qweight, module.scales.float().contiguous()
            table.append({name: t.detach() for name, t in row.items() if t is not None})
        return Int8Step(transformer, cache, cross, live[0], self_mask, table, norms[0].eps)

    def __call__(self, x: Tensor, t: int) -> Tensor:
        x = x.float().clone(memory_format=torch.contiguous_format)  # the kernel writes it
        cache = self.cache.keys[0]
        self.kernel(x, self.layers, self.heads, self.ffn, t, cache, self.self_allowed, self.live, self.cross_keys,
                    self.cross_allowed, self.eps, self.scratch)
        return x
