"""Channels-last inference for the SEANet convolutions (CPU, no gradients).

At inference a [B, C, T] activation is a view of [B, T, C] memory ("channels last"). Then every
convolution of the codec is a few matrix products over rows of samples with no im2col copy:
  * 1x1 kernels: one product;
  * strided kernels of 2s (downsampling): two products over blocks of s samples (block f and f+1);
  * transposed kernels of 2s (upsampling): two products written straight into the overlapping
    output blocks;
  * one input channel (the first layer) / one output channel (the last): the product over the
    unfolded taps / over all taps at once, then shifted adds;
  * other unstrided kernels (the residual blocks' 3-tap, the 7-tap ones next to the LSTM): one
    product per tap over shifted views of the rows, accumulated;
  * anything else: oneDNN's NHWC convolution, 1.3-2x faster than its NCW one at these shapes.
Slicing along time stays a view, and a time slice of one batch row is contiguous memory, so the
streaming code keeps its pieces in this layout without copies. The sums are the same as
`conv1d`'s in another order: outputs agree to float rounding.

Functions take either layout and return channels-last views; `to_channels_last` converts.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def is_channels_last(x: Tensor) -> bool:
    _, C, T = x.shape
    return (C == 1 or x.stride(1) == 1) and (T == 1 or x.stride(2) == C)


def empty_channels_last(batch: int, channels: int, length: int, like: Tensor) -> Tensor:
    return torch.empty(batch, length, channels, dtype=like.dtype, device=like.device).transpose(1, 2)


def empty_along_time(like: Tensor, length: int) -> Tensor:
    """An empty [B, C, length] tensor in the layout of `like` (channels last or not)."""
    B, C, _ = like.shape
    return empty_channels_last(B, C, length, like) if C > 1 and is_channels_last(like) else like.new_empty(B, C, length)


def to_channels_last(x: Tensor) -> Tensor:
    return x if is_channels_last(x) else x.transpose(1, 2).contiguous().transpose(1, 2)


def join(parts: list[Tensor | None]) -> Tensor | None:
    """torch.cat along time, channels last if any part is."""
    given = [p for p in parts if p is not None]
    parts = [p for p in given if p.shape[-1]]
    if not parts:
        return given[0] if given else None
    if len(parts) == 1:
        return parts[0]
    if parts[0].shape[1] == 1 or not any(is_channels_last(p) for p in parts):
        return torch.cat(parts, dim=-1)
    B, C = parts[-1].shape[:2]
    out = empty_channels_last(B, C, sum(p.shape[-1] for p in parts), parts[-1])
    pos = 0
    for p in parts:
        out[..., pos : pos + p.shape[-1]] = p
        pos += p.shape[-1]
    return out


def pad(x: Tensor, left: int, right: int, mode: str) -> Tensor | None:
    """Pad the time axis keeping channels last; None where `pad1d`'s general code must do it
    (reflecting a signal shorter than the pad, circular padding)."""
    T = x.shape[-1]
    if mode == "reflect" and T <= max(left, right) or mode == "circular":
        return None
    if not left and not right:
        return x

    def side(n: int, at_start: bool) -> Tensor | None:
        if n == 0:
            return None
        if mode == "reflect":
            return (x[..., 1 : n + 1] if at_start else x[..., T - n - 1 : T - 1]).flip(-1)
        if mode == "replicate":
            return (x[..., :1] if at_start else x[..., -1:]).expand(*x.shape[:2], n)
        return x.new_zeros(*x.shape[:2], n)

    return join([side(left, True), x, side(right, False)])


def _matmul(a: Tensor, w: Tensor, bias: Tensor | None) -> Tensor:
    """a [B, M, K] @ w [K, N] (+ bias [N]) -> [B, M, N]; batch 1 (the usual case) as one addmm."""
    if a.shape[0] == 1:
        out = torch.addmm(bias, a[0], w) if bias is not None else torch.mm(a[0], w)
        return out[None]
    out = torch.matmul(a, w)
    return out if bias is None else out.add_(bias)


class DerivedWeights:
    """Weight forms a convolution needs in this layout, each remade when its source changes."""

    def __init__(self) -> None:
        self.forms: dict[str, tuple[tuple, Tensor]] = {}

    def get(self, source: Tensor, name: str, make) -> Tensor:
        key = (id(source), source.data_ptr(), source.dtype, 0 if source.is_inference() else source._version)
        cached = self.forms.get(name)
        if cached is None or cached[0] != key:
            with torch.no_grad():
                cached = self.forms[name] = (key, make(source.detach()).contiguous())
        return cached[1]


def conv1d(x: Tensor, weight: Tensor, bias: Tensor | None, stride: int, dilation: int,
           derived: DerivedWeights) -> Tensor:
    """`F.conv1d(x, weight, bias, stride, 0, dilation)` of an already padded x, channels last."""
    cout, cin, k = weight.shape
    x = to_channels_last(x)
    B, _, L = x.shape
    frames = (L - (k - 1) * dilation - 1) // stride + 1
    rows = x.transpose(1, 2)  # [B, L, Cin], each row a sample
    if k == 1:
        y = _matmul(rows[:, : (frames - 1) * stride + 1 : stride], derived.get(weight, "t", lambda w: w[:, :, 0].t()), bias)
    elif cin == 1:
        taps = x[:, 0].unfold(-1, (k - 1) * dilation + 1, stride)[..., ::dilation]  # [B, frames, k], a view
        y = _matmul(taps, derived.get(weight, "taps", lambda w: w[:, 0].t()), bias)
    elif cout == 1 and stride == 1:
        z = _matmul(rows, derived.get(weight, "one", lambda w: w[0]), None)  # [B, L, k]: every tap of every sample
        y = z[:, :frames, 0].clone()
        for j in range(1, k):
            y += z[:, j * dilation : j * dilation + frames, j]
        if bias is not None:
            y += bias
        return y[:, None, :]
    elif k == 2 * stride and dilation == 1:
        # y_f = W_first . block_f + W_second . block_{f+1}, blocks of `stride` samples
        blocks = rows[:, : (frames + 1) * stride].reshape(B, frames + 1, stride * cin)
        first = derived.get(weight, "first", lambda w: w[:, :, :stride].permute(2, 1, 0).reshape(stride * cin, cout))
        second = derived.get(weight, "second", lambda w: w[:, :, stride:].permute(2, 1, 0).reshape(stride * cin, cout))
        y = _matmul(blocks[:, :frames], first, bias)
        for b in range(B):
            y[b].addmm_(blocks[b, 1:], second)
    elif stride == 1:
        # y_t = sum_j W_j . x_{t + j dilation}: one product per tap over shifted views of the rows
        # (no im2col copy). In the 32 kHz encoder, against oneDNN's NHWC convolution: 1.2-1.7x
        # from 128 channels up, the same below.
        taps = derived.get(weight, "shifted", lambda w: w.permute(2, 1, 0))  # [k, cin, cout]
        y = _matmul(rows[:, :frames], taps[0], bias)
        for b in range(B):
            for j in range(1, k):
                y[b].addmm_(rows[b, j * dilation : j * dilation + frames], taps[j])
    else:
        nhwc = derived.get(weight, "nhwc", lambda w: w[:, :, None].contiguous(memory_format=torch.channels_last))
        out = F.conv2d(x[:, :, None], nhwc, bias, (1, stride), 0, (1, dilation))[:, :, 0]
        return to_channels_last(out)
    return y.transpose(1, 2)


def conv_transpose1d(x: Tensor, weight: Tensor, bias: Tensor | None, stride: int, derived: DerivedWeights,
                     carry: Tensor | None = None, bias_on_tail: bool = True) -> Tensor:
    """`F.conv_transpose1d(x, weight, bias, stride)` for kernel 2 * stride, channels last: frame f
    writes its first s samples into output block f and its second s into block f + 1.
    `carry` [B, Cout, s] (streaming: the previous piece's tail) is added to block 0; with
    `bias_on_tail=False` the last block (the next piece's carry) gets no bias."""
    cin, cout, k = weight.shape
    x = to_channels_last(x)
    B, _, frames = x.shape
    first = derived.get(weight, "first", lambda w: w[:, :, :stride].permute(0, 2, 1).reshape(cin, stride * cout))
    second = derived.get(weight, "second", lambda w: w[:, :, stride:].permute(0, 2, 1).reshape(cin, stride * cout))
    block_bias = None if bias is None else derived.get(bias, "block_bias", lambda b: b.repeat(stride))
    out = torch.empty(B, frames + 1, stride * cout, dtype=x.dtype, device=x.device)
    rows = x.transpose(1, 2)
    for b in range(B):
        if block_bias is None:
            torch.mm(rows[b], first, out=out[b, :frames])
        else:
            torch.addmm(block_bias, rows[b], first, out=out[b, :frames])
        if block_bias is not None and bias_on_tail:
            out[b, frames] = block_bias
        else:
            out[b, frames] = 0
        out[b, 1:].addmm_(rows[b], second)
    if carry is not None:
        out[:, 0] += carry.transpose(1, 2).reshape(B, stride * cout)
    return out.view(B, (frames + 1) * stride, cout).transpose(1, 2)
