"""Reconstruction and adversarial losses for codec training (EnCodec's recipe), in plain torch.

The mel filterbank is computed here (HTK mel scale, triangles in Hz, no area normalisation: the
same matrix torchaudio's `melscale_fbanks` gives by default) so training needs no torchaudio.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def hz_to_mel(freq: torch.Tensor) -> torch.Tensor:
    return 2595.0 * torch.log10(1.0 + freq / 700.0)


def mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0,
                   f_max: float | None = None) -> torch.Tensor:
    """Triangular mel filters as a [n_fft // 2 + 1, n_mels] matrix (spectrogram @ fb -> mel)."""
    f_max = sample_rate / 2 if f_max is None else f_max
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(f"need 0 <= f_min < f_max <= sample_rate / 2, got {f_min}, {f_max}, {sample_rate}")
    n_freqs = n_fft // 2 + 1
    # float64 so the matrix matches reference implementations to ~1e-12 before the final cast.
    bins = torch.linspace(0, sample_rate // 2, n_freqs, dtype=torch.float64)
    mels = torch.linspace(float(hz_to_mel(torch.tensor(f_min, dtype=torch.float64))),
                          float(hz_to_mel(torch.tensor(f_max, dtype=torch.float64))), n_mels + 2, dtype=torch.float64)
    edges = mel_to_hz(mels)
    widths = edges[1:] - edges[:-1]  # [n_mels + 1]
    offsets = edges[None, :] - bins[:, None]  # [n_freqs, n_mels + 2]
    rising = -offsets[:, :-2] / widths[:-1]
    falling = offsets[:, 2:] / widths[1:]
    return torch.clamp(torch.minimum(rising, falling), min=0.0).float()


def stft_magnitude(x: torch.Tensor, n_fft: int, hop: int, win: int, normalized: bool = False) -> torch.Tensor:
    """|STFT| of [..., T] audio with a Hann window, centred with reflect padding: [..., F, frames]."""
    shape = x.shape
    flat = x.reshape(-1, shape[-1])
    if flat.shape[-1] <= n_fft // 2:
        # reflect padding needs more samples than half a window; zero-pad very short inputs instead.
        flat = F.pad(flat, (0, n_fft // 2 + 1 - flat.shape[-1]))
    window = torch.hann_window(win, device=x.device, dtype=x.dtype)
    spec = torch.stft(flat, n_fft, hop_length=hop, win_length=win, window=window, center=True,
                      pad_mode="reflect", normalized=normalized, return_complex=True)
    return spec.abs().reshape(*shape[:-1], *spec.shape[-2:])


class MelSpectrogram(nn.Module):
    """Log-mel spectrogram of [B, C, T] audio: [B, C, n_mels, frames]."""

    def __init__(self, sample_rate: int, n_fft: int, hop: int | None = None, n_mels: int = 64,
                 f_min: float = 0.0, f_max: float | None = None, normalized: bool = True,
                 floor: float = 1e-5, log: bool = True):
        super().__init__()
        self.n_fft, self.hop, self.normalized, self.floor, self.log = n_fft, hop or n_fft // 4, normalized, floor, log
        self.register_buffer("fb", mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mag = stft_magnitude(x.float(), self.n_fft, self.hop, self.n_fft, self.normalized)
        mel = torch.matmul(mag.transpose(-1, -2), self.fb).transpose(-1, -2)
        return torch.log10(mel.clamp(min=self.floor)) if self.log else mel


class MultiScaleMelLoss(nn.Module):
    """EnCodec's frequency loss: over windows 2^i, L1 + `l2_weight` * MSE of log-mel spectrograms."""

    def __init__(self, sample_rate: int, range_start: int = 6, range_end: int = 11, n_mels: int = 64,
                 f_min: float = 64.0, f_max: float | None = None, normalized: bool = True,
                 l2_weight: float = 1.0, floor: float = 1e-5):
        super().__init__()
        if range_end <= range_start:
            raise ValueError(f"range_end ({range_end}) must be > range_start ({range_start})")
        self.l2_weight = l2_weight
        f_min = min(f_min, sample_rate / 4)
        self.mels = nn.ModuleList(
            MelSpectrogram(sample_rate, 2**i, 2**i // 4, n_mels, f_min, f_max, normalized, floor)
            for i in range(range_start, range_end)
        )

    def forward(self, estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = estimate.new_zeros(())
        for mel in self.mels:
            a, b = mel(estimate), mel(target)
            total = total + F.l1_loss(a, b) + self.l2_weight * F.mse_loss(a, b)
        return total / len(self.mels)


def l1_time_loss(estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(estimate, target)


def hinge_discriminator_loss(real_logits: list[torch.Tensor], fake_logits: list[torch.Tensor]) -> torch.Tensor:
    """Mean over sub-discriminators of relu(1 - D(real)) + relu(1 + D(fake))."""
    losses = [F.relu(1 - r).mean() + F.relu(1 + f).mean() for r, f in zip(real_logits, fake_logits)]
    return torch.stack(losses).mean()


def hinge_generator_loss(fake_logits: list[torch.Tensor]) -> torch.Tensor:
    """EnCodec's generator term: mean over sub-discriminators of relu(1 - D(fake))."""
    return torch.stack([F.relu(1 - f).mean() for f in fake_logits]).mean()


def feature_matching_loss(real_feats: list[list[torch.Tensor]], fake_feats: list[list[torch.Tensor]],
                          eps: float = 1e-8) -> torch.Tensor:
    """L1 between discriminator feature maps of real and fake audio, each layer normalised by the
    mean |real feature| so deep and shallow layers weigh alike (EnCodec)."""
    terms = []
    for real_layers, fake_layers in zip(real_feats, fake_feats):
        for r, f in zip(real_layers, fake_layers):
            r = r.detach()
            terms.append(F.l1_loss(f, r) / (r.abs().mean() + eps))
    return torch.stack(terms).mean()


def cross_entropy_per_codebook(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked cross-entropy of [B, K, S, V] logits against [B, K, S] targets.

    Returns (mean over codebooks, per-codebook [K]); positions where `mask` is False (pattern
    padding, special tokens, padded frames) do not count. A codebook with no valid position
    contributes 0 rather than NaN.
    """
    B, K, S, V = logits.shape
    ce = F.cross_entropy(logits.float().reshape(-1, V), targets.reshape(-1).clamp(0, V - 1), reduction="none")
    ce = ce.view(B, K, S) * mask
    counts = mask.sum(dim=(0, 2)).clamp(min=1)
    per_k = ce.sum(dim=(0, 2)) / counts
    return per_k.mean(), per_k


def perplexity(ce: torch.Tensor) -> torch.Tensor:
    return torch.exp(ce.clamp(max=math.log(1e6)))
