"""SEANet encoder and decoder, the convolutional halves of EnCodec.

Layer order and indices match audiocraft's `SEANetEncoder.model` / `SEANetDecoder.model` (and the
`layers` list of transformers' EnCodec), so checkpoint keys map one to one: only the wrapping
names differ. Weight norm is stored as `weight_g` / `weight_v` parameters (as in the released
checkpoints) and folded into a plain weight, cached, whenever no gradient is needed.

Inference (no gradients) on CPU in fp32 takes faster forms that compute the same sums in another
order, so outputs agree to float rounding (~1e-7 relative): activations in channels-last layout,
where every convolution is a few matrix products (`codec/layout.py`), and the LSTM, the ELUs and
whole residual blocks through C kernels (`LSTMBlock`, `ELU`, `ResBlock`, from `wavecraft.kernels`).
`fast = True` is the default; set it False on a module, or call `Codec.set_fast(False)`, for the
plain calls. Training always uses the plain calls.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..kernels import LSTM_MAX_BATCH, elu, lstm_layer, resblock
from . import layout
from .config import CodecConfig


def pad1d(x: Tensor, left: int, right: int, mode: str) -> Tensor:
    """Pad the time axis. Reflection of a signal shorter than the pad is done the references' way:
    zero-extend on the right first, reflect, then cut the extension off again."""
    if x.dim() == 3 and x.shape[1] > 1 and layout.is_channels_last(x):  # inference: keep the layout
        y = layout.pad(x, left, right, mode)
        if y is not None:
            return y
    if mode != "reflect":
        return F.pad(x, (left, right), mode=mode) if mode != "constant" else F.pad(x, (left, right))
    extra = 0
    max_pad = max(left, right)
    if x.shape[-1] <= max_pad:
        extra = max_pad - x.shape[-1] + 1
        x = F.pad(x, (0, extra))
    y = F.pad(x, (left, right), mode="reflect")
    return y[..., : y.shape[-1] - extra]


def extra_padding(length: int, kernel: int, stride: int, padding_total: int) -> int:
    """Right padding so that the last window is complete (no sample dropped at the end).
    Exact integer form of the references' ceil((L - k + P) / s + 1) - 1."""
    n = length - kernel + padding_total
    frames = -(-n // stride)  # ceil division, correct for negative n too
    return frames * stride + kernel - padding_total - length


def _version(t: Tensor) -> int:
    return 0 if t.is_inference() else t._version  # tensors made in inference mode have no counter


def _inference() -> bool:
    return not torch.is_grad_enabled()  # training keeps the plain calls (and their gradients)


class _NormWeight(nn.Module):
    """Holds a convolution weight, either plain or as weight norm (`weight_g` * `weight_v`/|v|)."""

    transposed = False  # ConvTranspose weights are [in, out, k]: the bias follows dim 1

    def _init_weight(self, shape: tuple[int, ...], fan_in: int, weight_norm: bool) -> None:
        weight = torch.empty(shape)
        nn.init.kaiming_uniform_(weight, a=math.sqrt(5))  # torch's default conv init
        bound = 1 / math.sqrt(fan_in)
        self.bias = nn.Parameter(torch.empty(shape[1] if self.transposed else shape[0]).uniform_(-bound, bound))
        if weight_norm:
            self.weight_v = nn.Parameter(weight)
            self.weight_g = nn.Parameter(torch.linalg.vector_norm(weight, dim=(1, 2), keepdim=True))
            self.weight = None
        else:
            self.weight = nn.Parameter(weight)
            self.weight_g = self.weight_v = None
        self._folded: Tensor | None = None
        self._fold_key: tuple | None = None
        self._derived = layout.DerivedWeights()

    def _channels_last(self, x: Tensor) -> bool:
        """Inference on CPU in fp32 takes the channels-last forms (codec/layout.py)."""
        return self.fast and _inference() and x.is_cpu and x.dtype == torch.float32 and x.dim() == 3

    def conv_weight(self) -> Tensor:
        if self.weight_v is None:
            return self.weight
        g, v = self.weight_g, self.weight_v
        if torch.is_grad_enabled() and (g.requires_grad or v.requires_grad):
            return torch._weight_norm(v, g, 0)  # training: keep the graph
        # Inference: fold once; the key notices load_state_dict (version bump) and .to() (new storage).
        key = (_version(g), _version(v), g.data_ptr(), v.data_ptr(), v.dtype, v.device)
        if self._fold_key != key:
            with torch.inference_mode(False), torch.no_grad():
                self._folded = torch._weight_norm(v, g, 0)
            self._fold_key = key
        return self._folded


class NormConv1d(_NormWeight):
    """Conv1d with EnCodec padding (causal: all on the left; otherwise split, odd sample on the
    left) plus the extra right padding that makes every input sample reach an output frame."""

    def __init__(self, cin: int, cout: int, kernel_size: int, stride: int = 1, dilation: int = 1, *,
                 causal: bool, pad_mode: str, norm: str) -> None:
        super().__init__()
        self.stride, self.dilation, self.causal, self.pad_mode = stride, dilation, causal, pad_mode
        self.kernel_size = kernel_size
        self._init_weight((cout, cin, kernel_size), cin * kernel_size, norm == "weight_norm")
        self.norm = nn.GroupNorm(1, cout) if norm == "time_group_norm" else None
        self.effective_kernel = (kernel_size - 1) * dilation + 1
        self.padding_total = self.effective_kernel - stride
        if causal:
            self.pad_left, self.pad_right = self.padding_total, 0
        else:
            self.pad_right = self.padding_total // 2
            self.pad_left = self.padding_total - self.pad_right

    fast = True  # channels-last matrix products at inference (module docstring)

    def conv(self, x: Tensor) -> Tensor:
        """The convolution alone, on an already padded input (used by the streaming code)."""
        w = self.conv_weight()
        if self._channels_last(x):
            y = layout.conv1d(x, w, self.bias, self.stride, self.dilation, self._derived)
        else:
            y = F.conv1d(x, w, self.bias, self.stride, 0, self.dilation)
        return self.norm(y) if self.norm is not None else y

    def forward(self, x: Tensor) -> Tensor:
        extra = extra_padding(x.shape[-1], self.effective_kernel, self.stride, self.padding_total)
        return self.conv(pad1d(x, self.pad_left, self.pad_right + extra, self.pad_mode))


class NormConvTranspose1d(_NormWeight):
    """ConvTranspose1d that trims kernel - stride samples (causal: `trim_right_ratio` of it on
    the right; otherwise half, the odd one on the left) so the output is exactly stride x longer."""

    transposed = True

    def __init__(self, cin: int, cout: int, kernel_size: int, stride: int, *, causal: bool, norm: str,
                 trim_right_ratio: float = 1.0) -> None:
        super().__init__()
        self.stride, self.kernel_size, self.causal = stride, kernel_size, causal
        self._init_weight((cin, cout, kernel_size), cout * kernel_size, norm == "weight_norm")
        self.norm = nn.GroupNorm(1, cout) if norm == "time_group_norm" else None
        padding_total = kernel_size - stride
        self.trim_right = math.ceil(padding_total * trim_right_ratio) if causal else padding_total // 2
        self.trim_left = padding_total - self.trim_right

    fast = True  # channels-last matrix products at inference (module docstring)

    def _fast(self, x: Tensor) -> bool:
        return self._channels_last(x) and self.kernel_size == 2 * self.stride

    def piece(self, x: Tensor, carry: Tensor | None) -> tuple[Tensor, Tensor]:
        """Streaming: (the outputs no later input changes, with bias; the overlapping tail's
        partial sums, without). `carry` is the previous piece's tail, added to this one's start."""
        w = self.conv_weight()
        done = x.shape[-1] * self.stride
        if self._fast(x):
            y = layout.conv_transpose1d(x, w, self.bias, self.stride, self._derived, carry, bias_on_tail=False)
            return y[..., :done], y[..., done:]
        y = F.conv_transpose1d(x, w, None, self.stride)
        if carry is not None:
            y[..., : carry.shape[-1]] += carry
        tail = y[..., done:].clone()
        return y[..., :done].add_(self.bias[:, None]), tail

    def forward(self, x: Tensor) -> Tensor:
        w = self.conv_weight()
        if self._fast(x):
            y = layout.conv_transpose1d(x, w, self.bias, self.stride, self._derived)
        else:
            y = F.conv_transpose1d(x, w, self.bias, self.stride)
        if self.norm is not None:
            y = self.norm(y)
        return y[..., self.trim_left : y.shape[-1] - self.trim_right]


class ELU(nn.Module):
    """ELU (alpha 1); at inference on CPU, the C kernel of `wavecraft.kernels` (`fast`), which can
    also write its result into a given view (`into`, used by the streaming convolutions)."""

    fast = True

    def _kernel(self, x: Tensor):
        return elu() if self.fast and _inference() and x.is_cpu and x.dtype == torch.float32 else None

    def forward(self, x: Tensor) -> Tensor:
        kernel = self._kernel(x)
        return F.elu(x) if kernel is None else kernel(x)

    def into(self, x: Tensor, out: Tensor) -> Tensor:
        kernel = self._kernel(x)
        return out.copy_(F.elu(x)) if kernel is None else kernel(x, out)


class ResBlock(nn.Module):
    """ELU -> conv(k, dilation) to dim/compress -> ELU -> 1x1 conv back, plus a skip (identity or 1x1)."""

    def __init__(self, dim: int, cfg: CodecConfig, dilation: int, norm: str) -> None:
        super().__init__()
        hidden = dim // cfg.compress
        conv = dict(causal=cfg.causal, pad_mode=cfg.pad_mode, norm=norm)
        self.block = nn.ModuleList([
            ELU(),
            NormConv1d(dim, hidden, cfg.residual_kernel_size, dilation=dilation, **conv),
            ELU(),
            NormConv1d(hidden, dim, 1, **conv),
        ])
        self.shortcut = nn.Identity() if cfg.true_skip else NormConv1d(dim, dim, 1, **conv)

    def forward(self, x: Tensor) -> Tensor:
        conv, weights = self.block[1], self._fused_weights(x)
        if weights is not None:
            extra = extra_padding(x.shape[-1], conv.effective_kernel, conv.stride, conv.padding_total)
            padded = pad1d(layout.to_channels_last(x), conv.pad_left, conv.pad_right + extra, conv.pad_mode)
            return resblock()(layout.to_channels_last(padded), *weights, conv.pad_left)
        y = x
        for layer in self.block:
            y = layer(y)
        return self.shortcut(x) + y

    # The fused kernel holds both convolutions' weights in a core's L2 while it walks the rows;
    # beyond that (the 32 kHz codec's 512-channel blocks: 2 MB) the BLAS's blocking wins.
    FUSED_MAX_WEIGHTS = 256 * 1024

    def streams_fused(self) -> bool:
        """Whether the streaming code may run this block as one padded convolution (`on_padded`):
        an identity shortcut, ELU -> unstrided, undilated convolution -> ELU -> 1x1, no norm."""
        first, last = self.block[1], self.block[3]
        return (isinstance(self.shortcut, nn.Identity) and first.stride == 1 and first.dilation == 1
                and first.norm is None and last.norm is None and last.kernel_size == 1 and last.stride == 1)

    def _fused_weights(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor] | None:
        """(w1 [k, C, H], b1, w2 [H, C], b2) when `x` can go through the fused C kernel."""
        first, last = self.block[1], self.block[3]
        if not (self.streams_fused() and all(getattr(m, "fast", True) for m in self.block) and first._channels_last(x)
                and resblock() is not None):
            return None
        w1, w2 = first.conv_weight(), last.conv_weight()
        hidden, dim, k = w1.shape
        if dim % 16 or hidden % 16 or w1.numel() + w2.numel() > self.FUSED_MAX_WEIGHTS or x.shape[1] != dim:
            return None
        return (first._derived.get(w1, "shifted", lambda w: w.permute(2, 1, 0)), first.bias,
                last._derived.get(w2, "t", lambda w: w[:, :, 0].t()), last.bias)

    def on_padded(self, x: Tensor) -> Tensor:
        """The block on an input already padded for its first convolution (streaming, and the
        fused path of `forward`): output i is the block at input sample i + the left padding."""
        skip = self.block[1].pad_left
        weights = self._fused_weights(x)
        if weights is not None:
            return resblock()(layout.to_channels_last(x), *weights, skip)
        y = self.block[1].conv(self.block[0](x))
        y = self.block[3](self.block[2](y))  # a fresh tensor: the skip goes in place
        return y.add_(x[..., skip : skip + y.shape[-1]])


class LSTMBlock(nn.Module):
    """Unidirectional multi-layer LSTM over time with a residual connection; [B, C, T] in and out.

    At inference on CPU (fp32, batch <= 4) the recurrence runs the C kernel of `wavecraft.kernels`
    (`fast`, as for the convolutions): the input projections of a layer are one matmul over all
    steps, then one kernel call walks the steps. Same outputs as `nn.LSTM` to float rounding."""

    fast = True

    def __init__(self, dim: int, num_layers: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, num_layers)

    def forward(self, x: Tensor) -> Tensor:
        seq = x.permute(2, 0, 1)
        y, _ = self.run(seq)
        return (y + seq).permute(1, 2, 0)

    def run(self, seq: Tensor, state: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """`nn.LSTM`'s call: seq [T, B, C], state (h, c) each [layers, B, C] or None."""
        kernel = lstm_layer() if self.fast and _inference() else None
        if (kernel is None or not seq.is_cpu or seq.dtype != torch.float32 or not 1 <= seq.shape[1] <= LSTM_MAX_BATCH
                or seq.shape[-1] % 16 or self.lstm.weight_hh_l0.dtype != torch.float32):
            return self.lstm(seq, state)
        T, B, H = seq.shape
        x, hs, cs = seq, [], []
        for layer in range(self.lstm.num_layers):
            w_ih, w_hh, b_ih, b_hh = (getattr(self.lstm, f"{name}_l{layer}") for name in
                                      ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
            gates = torch.addmm(b_ih + b_hh, x.reshape(T * B, x.shape[-1]), w_ih.t()).view(T, B, 4 * H)
            h0 = seq.new_zeros(B, H) if state is None else state[0][layer].contiguous()
            c = seq.new_zeros(B, H) if state is None else state[1][layer].clone(memory_format=torch.contiguous_format)
            x = kernel(gates, w_hh.contiguous(), h0, c)
            hs.append(x[-1] if T else h0)
            cs.append(c)
        return x, (torch.stack(hs), torch.stack(cs))


def _conv_kwargs(cfg: CodecConfig) -> dict:
    return dict(causal=cfg.causal, pad_mode=cfg.pad_mode, norm=cfg.norm)


class SEANetEncoder(nn.Module):
    """wav [B, channels, T] -> latent [B, dimension, ceil(T / hop)]."""

    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__()
        conv = _conv_kwargs(cfg)
        width = cfg.n_filters
        layers: list[nn.Module] = [NormConv1d(cfg.channels, width, cfg.kernel_size, **conv)]
        for ratio in reversed(cfg.ratios):
            for j in range(cfg.n_residual_layers):
                layers.append(ResBlock(width, cfg, cfg.dilation_base**j, cfg.norm))
            layers += [ELU(), NormConv1d(width, width * 2, ratio * 2, stride=ratio, **conv)]
            width *= 2
        if cfg.lstm_layers:
            layers.append(LSTMBlock(width, cfg.lstm_layers))
        layers += [ELU(), NormConv1d(width, cfg.dimension, cfg.last_kernel_size, **conv)]
        self.layers = nn.ModuleList(layers)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x.contiguous()  # inference runs channels last inside


class SEANetDecoder(nn.Module):
    """latent [B, dimension, F] -> wav [B, channels, F * hop]."""

    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__()
        conv = _conv_kwargs(cfg)
        width = cfg.n_filters * 2 ** len(cfg.ratios)
        layers: list[nn.Module] = [NormConv1d(cfg.dimension, width, cfg.kernel_size, **conv)]
        if cfg.lstm_layers:
            layers.append(LSTMBlock(width, cfg.lstm_layers))
        for ratio in cfg.ratios:
            layers += [
                ELU(),
                NormConvTranspose1d(width, width // 2, ratio * 2, ratio, causal=cfg.causal, norm=cfg.norm,
                                    trim_right_ratio=cfg.trim_right_ratio),
            ]
            width //= 2
            for j in range(cfg.n_residual_layers):
                layers.append(ResBlock(width, cfg, cfg.dilation_base**j, cfg.norm))
        layers += [ELU(), NormConv1d(width, cfg.channels, cfg.last_kernel_size, **conv)]
        if cfg.final_activation == "tanh":
            layers.append(nn.Tanh())
        self.layers = nn.ModuleList(layers)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x.contiguous()  # inference runs channels last inside
