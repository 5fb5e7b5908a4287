"""Multi-scale STFT discriminator (EnCodec's MS-STFTD).

Each sub-discriminator looks at the complex STFT (real and imaginary parts as channels) of the
audio at one resolution through a small stack of 2-d convolutions that stride along frequency and
dilate along time. It returns a logit map and the intermediate feature maps (for feature matching).
"""
from __future__ import annotations

import dataclasses

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from ..config import Config


@dataclasses.dataclass
class DiscriminatorConfig(Config):
    filters: int = 32
    max_filters: int = 1024
    filters_scale: int = 1
    kernel_size: tuple[int, int] = (3, 9)
    dilations: tuple[int, ...] = (1, 2, 4)
    stride: tuple[int, int] = (1, 2)
    n_ffts: tuple[int, ...] = (1024, 2048, 512, 256, 128)
    hop_lengths: tuple[int, ...] = (256, 512, 128, 64, 32)
    win_lengths: tuple[int, ...] = (1024, 2048, 512, 256, 128)
    normalized: bool = True

    def __post_init__(self) -> None:
        if not len(self.n_ffts) == len(self.hop_lengths) == len(self.win_lengths):
            raise ValueError("n_ffts, hop_lengths and win_lengths must have the same length")


def _pad(kernel: tuple[int, int], dilation: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    return ((kernel[0] - 1) * dilation[0] // 2, (kernel[1] - 1) * dilation[1] // 2)


class STFTDiscriminator(nn.Module):
    def __init__(self, channels: int, n_fft: int, hop: int, win: int, cfg: DiscriminatorConfig):
        super().__init__()
        self.n_fft, self.hop, self.win, self.normalized = n_fft, hop, win, cfg.normalized
        self.register_buffer("window", torch.hann_window(win), persistent=False)
        k = tuple(cfg.kernel_size)
        convs = [weight_norm(nn.Conv2d(2 * channels, cfg.filters, k, padding=_pad(k)))]
        out_ch = cfg.filters
        for i, d in enumerate(cfg.dilations):
            in_ch = min(cfg.filters_scale**i * cfg.filters, cfg.max_filters)
            out_ch = min(cfg.filters_scale ** (i + 1) * cfg.filters, cfg.max_filters)
            convs.append(weight_norm(nn.Conv2d(in_ch, out_ch, k, stride=tuple(cfg.stride), dilation=(d, 1),
                                               padding=_pad(k, (d, 1)))))
        square = (k[0], k[0])
        convs.append(weight_norm(nn.Conv2d(out_ch, out_ch, square, padding=_pad(square))))
        self.convs = nn.ModuleList(convs)
        self.post = weight_norm(nn.Conv2d(out_ch, 1, square, padding=_pad(square)))
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        B, C, T = x.shape
        flat = x.reshape(B * C, T).float()
        if T < self.n_fft:
            flat = nn.functional.pad(flat, (0, self.n_fft - T))
        spec = torch.stft(flat, self.n_fft, self.hop, self.win, window=self.window, center=False,
                          normalized=self.normalized, return_complex=True)
        # [B*C, F, frames] -> [B, 2C, frames, F]: time first, frequency last (strided axis).
        z = torch.cat([spec.real, spec.imag], dim=0).reshape(2, B, C, *spec.shape[-2:])
        z = z.permute(1, 0, 2, 4, 3).reshape(B, 2 * C, spec.shape[-1], spec.shape[-2])
        feats = []
        for conv in self.convs:
            z = self.act(conv(z))
            feats.append(z)
        return self.post(z), feats


class MultiScaleSTFTDiscriminator(nn.Module):
    def __init__(self, channels: int = 1, config: DiscriminatorConfig | None = None):
        super().__init__()
        cfg = config or DiscriminatorConfig()
        self.config = cfg
        self.discriminators = nn.ModuleList(
            STFTDiscriminator(channels, n, h, w, cfg) for n, h, w in zip(cfg.n_ffts, cfg.hop_lengths, cfg.win_lengths)
        )

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        """[B, C, T] audio -> (logits per scale, feature maps per scale)."""
        logits, feats = [], []
        for disc in self.discriminators:
            logit, feat = disc(x)
            logits.append(logit)
            feats.append(feat)
        return logits, feats
