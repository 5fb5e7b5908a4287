"""Chroma features and the melody-adherence metric (chroma cosine similarity).

Chroma folds a spectrogram onto the 12 pitch classes (C, C#, ..., B). Each STFT bin contributes to
the pitch classes near its frequency with a triangular weight one semitone wide, so a pure tone
lands on its own class even when it falls between two bins.
"""
from __future__ import annotations

import torch

from ..train.losses import stft_magnitude

PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def chroma_filterbank(sample_rate: int, n_fft: int, f_min: float = 55.0, f_max: float = 5000.0) -> torch.Tensor:
    """[n_fft // 2 + 1, 12] matrix mapping magnitude bins to pitch classes."""
    freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    fb = torch.zeros(freqs.numel(), 12, dtype=torch.float64)
    valid = (freqs >= f_min) & (freqs <= min(f_max, sample_rate / 2))
    # Semitones above C (MIDI 60 is C4; 69 is A4 = 440 Hz), folded to one octave.
    semis = 12 * torch.log2(freqs[valid] / 440.0) + 69
    pc = torch.remainder(semis, 12.0)
    classes = torch.arange(12, dtype=torch.float64)
    dist = (pc[:, None] - classes[None, :]).abs()
    dist = torch.minimum(dist, 12 - dist)  # circular distance on the pitch-class wheel
    fb[valid] = torch.clamp(1 - dist, min=0)
    return fb.float()


def chroma(wav: torch.Tensor, sample_rate: int, n_fft: int = 4096, hop: int | None = None) -> torch.Tensor:
    """[B, C, T] (or [C, T] / [T]) audio -> [B, 12, frames], each frame max-normalised to 1.

    Channels are averaged first. Silent frames stay zero.
    """
    while wav.dim() < 3:
        wav = wav.unsqueeze(0)
    mono = wav.float().mean(dim=1)
    mag = stft_magnitude(mono, n_fft, hop or n_fft // 4, n_fft) ** 2  # [B, F, frames]
    fb = chroma_filterbank(sample_rate, n_fft).to(mag.device)
    out = torch.einsum("bft,fc->bct", mag, fb)
    peak = out.amax(dim=1, keepdim=True)
    return torch.where(peak > 1e-8, out / peak.clamp(min=1e-8), torch.zeros_like(out))


def chroma_cosine_similarity(estimate: torch.Tensor, reference: torch.Tensor, sample_rate: int,
                             n_fft: int = 4096) -> torch.Tensor:
    """Mean over frames of the cosine similarity of the two chromagrams; one value per batch item.

    The shorter signal sets the number of frames compared, so generated audio of a slightly
    different length can be scored against its melody.
    """
    a = chroma(estimate, sample_rate, n_fft)
    b = chroma(reference, sample_rate, n_fft)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"batch sizes differ: {a.shape[0]} vs {b.shape[0]}")
    frames = min(a.shape[-1], b.shape[-1])
    a, b = a[..., :frames], b[..., :frames]
    return torch.nn.functional.cosine_similarity(a, b, dim=1, eps=1e-8).mean(dim=-1)
