"""Reconstruction metrics for codecs: SI-SNR, multi-scale mel distance, multi-scale STFT distance.

All take [B, C, T] (or [C, T] / [T]) tensors of the same shape and return one value per batch item
so callers can average over a dataset however they like.
"""
from __future__ import annotations

import torch

from ..train.losses import MelSpectrogram, stft_magnitude


def _check(estimate: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if estimate.shape != reference.shape:
        raise ValueError(f"estimate {tuple(estimate.shape)} and reference {tuple(reference.shape)} differ in shape")
    while estimate.dim() < 3:
        estimate, reference = estimate.unsqueeze(0), reference.unsqueeze(0)
    return estimate.float(), reference.float()


def si_snr(estimate: torch.Tensor, reference: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale-invariant SNR in dB per batch item (channels are concatenated in time)."""
    estimate, reference = _check(estimate, reference)
    est = estimate.flatten(1)
    ref = reference.flatten(1)
    est = est - est.mean(dim=1, keepdim=True)
    ref = ref - ref.mean(dim=1, keepdim=True)
    # Project the estimate on the reference: the part along it is "signal", the rest is "noise".
    scale = (est * ref).sum(dim=1, keepdim=True) / (ref.pow(2).sum(dim=1, keepdim=True) + eps)
    target = scale * ref
    noise = est - target
    return 10 * torch.log10((target.pow(2).sum(dim=1) + eps) / (noise.pow(2).sum(dim=1) + eps))


def mel_distance(estimate: torch.Tensor, reference: torch.Tensor, sample_rate: int,
                 n_ffts: tuple[int, ...] = (512, 1024, 2048), n_mels: int = 80) -> torch.Tensor:
    """Mean absolute difference of log10-mel spectrograms, averaged over window sizes; per item."""
    estimate, reference = _check(estimate, reference)
    total = torch.zeros(estimate.shape[0])
    for n_fft in n_ffts:
        mel = MelSpectrogram(sample_rate, n_fft, n_fft // 4, n_mels=n_mels, normalized=False).to(estimate.device)
        total += (mel(estimate) - mel(reference)).abs().flatten(1).mean(dim=1).cpu()
    return total / len(n_ffts)


def stft_distance(estimate: torch.Tensor, reference: torch.Tensor,
                  n_ffts: tuple[int, ...] = (512, 1024, 2048), eps: float = 1e-5) -> torch.Tensor:
    """Multi-resolution STFT distance per item: spectral convergence + log-magnitude L1."""
    estimate, reference = _check(estimate, reference)
    total = torch.zeros(estimate.shape[0])
    for n_fft in n_ffts:
        a = stft_magnitude(estimate, n_fft, n_fft // 4, n_fft).flatten(1)
        b = stft_magnitude(reference, n_fft, n_fft // 4, n_fft).flatten(1)
        convergence = (a - b).norm(dim=1) / (b.norm(dim=1) + eps)
        log_l1 = (torch.log(a + eps) - torch.log(b + eps)).abs().mean(dim=1)
        total += (convergence + log_l1).cpu()
    return total / len(n_ffts)
