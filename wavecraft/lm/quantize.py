"""Weight-only quantisation of the LM's linear layers: int8 per output channel, int4 per group.

Decoding reads every weight once per step and does little arithmetic with it, so it runs at the
speed the weights stream from memory: fewer bytes per weight is the lever on CPU.

- `int8`: w ≈ q · s with q int8 in [-127, 127] and one fp32 scale s per output channel (symmetric,
  s = max|w_row| / 127). 1 byte per weight, 4x fewer bytes than fp32.
- `int4`: w ≈ (q - 8) · s + z with q in [0, 15] and one bfloat16 (s, z) pair per `group_size`
  (32) consecutive input weights of a row (asymmetric). 0.625 byte per weight, 6.4x fewer than fp32.

Only weights are quantised; activations, layer norms, embeddings and attention keep the model's
dtype, except that an fp32 model's KV cache is kept in bfloat16 (see `quantize_lm`). On CPU,
int8 products of one to four rows (decoding) run the C kernel of `wavecraft/kernels` (activations
carried as two int8 pieces, ~15 bits, on CPUs with AVX512-VNNI, else fp32; fp32 sums); the rest
run PyTorch's packed kernels (`aten._weight_int8pack_mm`, `aten._weight_int4pack_mm_for_cpu`), which take bfloat16 activations and accumulate in fp32: the
input of such a layer is rounded to bfloat16 and its output comes back in bfloat16, part of the
measured quality cost (docs/performance.md). Elsewhere (CUDA, or a PyTorch without the kernels)
the weight is dequantised on the fly: the same numbers, slower. Quantisation is deterministic,
so seeded generation stays reproducible.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..kernels import INT8_MAX_ROWS, int8_matmul, int8_matmul_fits

QUANT_MODES = ("int8", "int4")
_KERNEL_DTYPE = torch.bfloat16  # what the CPU packed kernels accept for activations and scales


def _has_op(name: str) -> bool:
    return hasattr(torch.ops.aten, name)


# Looked up once: a decode step calls ~150 quantised layers, so per-call Python costs add up.
_INT8_MM = getattr(torch.ops.aten, "_weight_int8pack_mm", None)
_INT4_MM = getattr(torch.ops.aten, "_weight_int4pack_mm_for_cpu", None)


class Int8Linear(nn.Module):
    """A bias-optional linear layer holding int8 weights [out, in] and fp32 per-row scales [out]."""

    def __init__(self, in_features: int, out_features: int, bias: bool, device: torch.device | None = None) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer("qweight", torch.zeros(out_features, in_features, dtype=torch.int8, device=device))
        self.register_buffer("scales", torch.ones(out_features, device=device))
        self.bias = nn.Parameter(torch.zeros(out_features, device=device), requires_grad=False) if bias else None
        # The CPU kernel wants its scales in the activation dtype; converted once, not per call.
        self._kernel_scales: torch.Tensor | None = None

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> "Int8Linear":
        w = linear.weight.detach().float()
        module = cls(linear.in_features, linear.out_features, linear.bias is not None, w.device)
        scales = (w.abs().amax(dim=1) / 127.0).clamp(min=torch.finfo(torch.float32).tiny)
        module.qweight.copy_(torch.round(w / scales[:, None]).clamp(-127, 127).to(torch.int8))
        module.scales.copy_(scales)
        if linear.bias is not None:
            module.bias.data = linear.bias.detach().clone()
        return module

    def dequantized(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The weight [out, in] the quantised one stands for."""
        return self.qweight.to(dtype) * self.scales.to(dtype)[:, None]

    def weight_bytes(self) -> int:
        return self.qweight.numel() + self.scales.numel() * self.scales.element_size()

    def _c_kernel(self, flat: torch.Tensor) -> torch.Tensor | None:
        """The C kernel's product (wavecraft/kernels), or None where it does not apply."""
        kernel = int8_matmul()
        if kernel is None or not int8_matmul_fits(self.qweight):
            return None
        scales = self.scales if self.scales.dtype == torch.float32 else self.scales.float()
        bias = None if self.bias is None else self.bias.detach().float().contiguous()
        return kernel(flat.float(), self.qweight, scales, bias).to(flat.dtype)  # the bias added in the kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_cpu and x.numel() <= INT8_MAX_ROWS * self.in_features:  # decoding: a few rows
            out = self._c_kernel(x.reshape(-1, self.in_features))
            if out is not None:
                return out.view(*x.shape[:-1], self.out_features)
        if _INT8_MM is not None and x.is_cpu:
            scales = self._kernel_scales
            if scales is None or scales.device != x.device:
                scales = self._kernel_scales = self.scales.to(_KERNEL_DTYPE)
            out = _INT8_MM(x.reshape(-1, self.in_features).to(_KERNEL_DTYPE), self.qweight, scales)
            out = out.view(*x.shape[:-1], self.out_features).to(x.dtype)
            return out if self.bias is None else out + self.bias
        return F.linear(x, self.dequantized(x.dtype), self.bias)

    def product_2d(self) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """h [M, in] -> h W^T as one kernel call plus the dtype casts (no reshapes, no bias), for
        decode loops that call ~150 layers a step; None where `forward` must be used."""
        if self.bias is not None or not self.qweight.is_cpu:
            return None
        kernel = int8_matmul()
        if kernel is not None and int8_matmul_fits(self.qweight):
            qweight, scales32 = self.qweight, self.scales.float().contiguous()
            fallback = self.forward

            def c_product(h: torch.Tensor) -> torch.Tensor:
                if h.shape[0] > INT8_MAX_ROWS:
                    return fallback(h)
                return kernel(h if h.dtype == torch.float32 else h.float(), qweight, scales32, None).to(h.dtype)

            return c_product
        if _INT8_MM is None:
            return None
        qweight, scales = self.qweight, self.scales.to(_KERNEL_DTYPE)
        return lambda h: _INT8_MM(h.to(_KERNEL_DTYPE), qweight, scales).to(h.dtype)

    def product_2d_gelu(self) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """h [M, in] -> GELU(h W^T + bias) with the GELU applied inside the C kernel (M up to
        INT8_MAX_ROWS; more rows: `forward` then `F.gelu`); None where the kernel does not apply."""
        kernel = int8_matmul()
        if kernel is None or not self.qweight.is_cpu or not int8_matmul_fits(self.qweight):
            return None
        qweight, scales32 = self.qweight, self.scales.float().contiguous()
        bias = None if self.bias is None else self.bias.detach().float().contiguous()
        forward = self.forward

        def c_product(h: torch.Tensor) -> torch.Tensor:
            if h.shape[0] > INT8_MAX_ROWS:
                return F.gelu(forward(h))
            return kernel(h if h.dtype == torch.float32 else h.float(), qweight, scales32, bias, True).to(h.dtype)

        return c_product

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


INT4_GROUP = 32  # input weights per (scale, zero): 128 is ~5% faster, but its logit error is ~30% larger


def int4_group_size(in_features: int, preferred: int = INT4_GROUP) -> int:
    """The largest of 256, 128, 64, 32 that is at most `preferred` and divides `in_features`."""
    for g in (256, 128, 64, 32):
        if g <= preferred and in_features % g == 0:
            return g
    raise ConfigError(f"int4 quantisation needs layer widths divisible by 32, got {in_features}")


class Int4Linear(nn.Module):
    """Linear layer with 4-bit weights in groups of `group_size` input weights per (scale, zero).

    Storage: on CPU with the packed kernel, `qweight` is PyTorch's int4 pack for
    `_weight_int4pack_mm_for_cpu` (layout "cpu"); otherwise two nibbles per byte, even columns in the
    low nibble (layout "plain"), dequantised on the fly. `scales_zeros` is [in/group, out, 2].
    """

    def __init__(self, in_features: int, out_features: int, bias: bool, group_size: int, layout: str,
                 device: torch.device | None = None) -> None:
        super().__init__()
        if in_features % group_size or in_features % 2:
            raise ConfigError(f"int4 group size {group_size} must divide the layer width {in_features}")
        self.in_features, self.out_features, self.group_size, self.layout = in_features, out_features, group_size, layout
        self.register_buffer("qweight", torch.zeros(out_features, in_features // 2, dtype=torch.uint8, device=device))
        self.register_buffer("scales_zeros", torch.zeros(in_features // group_size, out_features, 2,
                                                         dtype=_KERNEL_DTYPE, device=device))
        self.bias = nn.Parameter(torch.zeros(out_features, device=device), requires_grad=False) if bias else None

    @staticmethod
    def cpu_kernel_available(out_features: int) -> bool:
        return (_INT4_MM is not None and _has_op("_convert_weight_to_int4pack_for_cpu")
                and out_features % 16 == 0)  # the kernel packs 16 output rows together

    @classmethod
    def from_linear(cls, linear: nn.Linear, group_size: int = INT4_GROUP, layout: str | None = None) -> "Int4Linear":
        """layout None: "cpu" (the packed kernel) for a CPU layer the kernel can take, else "plain"."""
        w = linear.weight.detach().float()
        out_f, in_f = w.shape
        group_size = int4_group_size(in_f, group_size)
        can_pack = w.device.type == "cpu" and cls.cpu_kernel_available(out_f)
        if layout == "cpu" and not can_pack:
            raise ConfigError("the CPU int4 kernel needs a CPU layer with a multiple of 16 outputs")
        on_cpu = can_pack if layout is None else layout == "cpu"
        module = cls(in_f, out_f, linear.bias is not None, group_size, "cpu" if on_cpu else "plain", w.device)
        groups = w.view(out_f, in_f // group_size, group_size)
        low, high = groups.amin(-1, keepdim=True), groups.amax(-1, keepdim=True)
        scale = ((high - low) / 15.0).clamp(min=1e-8)
        # Scales and zeros are stored in bfloat16 (the kernel's format): quantise against the
        # rounded values so that q, scale and zero agree with each other exactly.
        scale = scale.to(_KERNEL_DTYPE).float()
        zero = (low + 8 * scale).to(_KERNEL_DTYPE).float()  # w = (q - 8) * scale + zero
        q = torch.round((groups - zero) / scale + 8).clamp(0, 15).to(torch.int32).view(out_f, in_f)
        if on_cpu:
            module.qweight = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 1)
        else:
            module.qweight.copy_((q[:, 0::2] | (q[:, 1::2] << 4)).to(torch.uint8))
        sz = torch.stack([scale.squeeze(-1), zero.squeeze(-1)], dim=-1)  # [out, groups, 2]
        module.scales_zeros.copy_(sz.transpose(0, 1).to(_KERNEL_DTYPE))
        if linear.bias is not None:
            module.bias.data = linear.bias.detach().clone()
        return module

    def weight_bytes(self) -> int:
        return self.qweight.numel() * self.qweight.element_size() + self.scales_zeros.numel() * 2

    def dequantized(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        if self.layout == "cpu":  # the pack is opaque: read it back through the kernel itself
            eye = torch.eye(self.in_features, dtype=_KERNEL_DTYPE, device=self.qweight.device)
            return self._kernel(eye).t().to(dtype)
        q = torch.stack([self.qweight & 15, self.qweight >> 4], dim=-1).view(self.out_features, self.in_features)
        sz = self.scales_zeros.float().repeat_interleave(self.group_size, dim=0)  # [in, out, 2]
        return ((q.float() - 8) * sz[..., 0].t() + sz[..., 1].t()).to(dtype)

    def _kernel(self, flat: torch.Tensor) -> torch.Tensor:
        assert _INT4_MM is not None
        return _INT4_MM(flat, self.qweight, self.group_size, self.scales_zeros)

    def product_2d(self) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """As `Int8Linear.product_2d`."""
        if self.layout != "cpu" or self.bias is not None:
            return None
        assert _INT4_MM is not None
        qweight, group, scales_zeros = self.qweight, self.group_size, self.scales_zeros
        return lambda h: _INT4_MM(h.to(_KERNEL_DTYPE), qweight, group, scales_zeros).to(h.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.layout == "cpu":
            if not x.is_cpu:
                raise ConfigError("this int4 model was packed for CPU; quantise it on its device "
                                  "(MusicGen.get_pretrained(..., device=..., quantize='int4'))")
            out = self._kernel(x.reshape(-1, self.in_features).to(_KERNEL_DTYPE))
            out = out.view(*x.shape[:-1], self.out_features).to(x.dtype)
            return out if self.bias is None else out + self.bias
        return F.linear(x, self.dequantized(x.dtype), self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                f"group_size={self.group_size}, layout={self.layout}")


QuantLinear = (Int8Linear, Int4Linear)


def check_quantize_mode(mode: str | None) -> str | None:
    if mode is None or mode in ("none", "fp32", ""):
        return None
    if mode not in QUANT_MODES:
        raise ConfigError(f"unknown quantisation {mode!r}; choose one of {', '.join(QUANT_MODES)} (or none)")
    return mode


def quantize_lm(lm: nn.Module, mode: str, group_size: int = INT4_GROUP, kv_bfloat16: bool = True) -> nn.Module:
    """Replace every `nn.Linear` of `lm` (attention, feed-forward, output heads) in place by its
    quantised form and return `lm`. Do it on the device the model will run on: the int4 CPU
    kernel's packing is specific to CPU. Training a quantised model is not supported.

    kv_bfloat16: also keep an fp32 model's KV cache in bfloat16. With 4x to 6x fewer weight bytes,
    reading the cache becomes a large share of a step (at 10 s of audio ~100 MB per step on
    average in fp32, 40% of int4's weight bytes); bfloat16 halves it, for an error well below the
    weights' own."""
    mode = check_quantize_mode(mode)
    if mode is None:
        return lm
    if getattr(lm, "quantization", None) is not None:
        raise ConfigError(f"this model is already quantised ({lm.quantization}); load it again to change that")
    targets = [(name, m) for name, m in lm.named_modules() if isinstance(m, nn.Linear)]
    for name, linear in targets:
        parent_name, _, attr = name.rpartition(".")
        parent = lm.get_submodule(parent_name) if parent_name else lm
        new = Int8Linear.from_linear(linear) if mode == "int8" else Int4Linear.from_linear(linear, group_size)
        setattr(parent, attr, new)
    lm.quantization = mode
    if kv_bfloat16 and getattr(lm, "dtype", None) == torch.float32:
        lm.kv_dtype = torch.bfloat16
    return lm.eval()


def weight_bytes(module: nn.Module) -> int:
    """Bytes of weight storage in the linear layers of `module` (what a decode step streams)."""
    total = 0
    for m in module.modules():
        if isinstance(m, QuantLinear):
            total += m.weight_bytes()
        elif isinstance(m, nn.Linear):
            total += m.weight.numel() * m.weight.element_size()
    return total
