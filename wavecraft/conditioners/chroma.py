"""Melody conditioning: a 12-bin chromagram of a reference waveform, argmax-quantised.

`ChromaExtractor` reproduces MusicGen-melody's features (audiocraft's `ChromaExtractor` with
`argmax=True`, and transformers' `MusicgenMelodyFeatureExtractor`) number for number:

    power spectrogram   Hann window, n_fft = win = 16384, hop = 4096 at 32 kHz, centred with
                        reflect padding, scaled by 1/sum(window^2) (torchaudio `normalized=True`)
    chroma filter bank  librosa's `filters.chroma(tuning=0)`: Gaussian bumps per pitch class,
                        columns L2-normalised, octave weighting centred on octave 5 (width 2), C first
    normalisation       divide each frame by its largest bin (eps 1e-6)
    quantisation        one-hot of the largest bin

A clip shorter than `n_fft` is zero-padded on both sides first. The defaults give 7.8125 chroma
frames per second (not the LM's 50 Hz): Meta's melody LMs take the chroma as a prefix at that
rate, tiled or cut to 235 frames (30 s). Set `hop_length = sample_rate / frame_rate` for a chroma
at another rate (e.g. 640 at 32 kHz for one frame per LM step).

`ChromaConditioner` projects the chroma to the LM width. Its null melody (a `None` row) is, by
default, Meta's: a one-hot "C" in every frame, attended like any melody, because that is what
the released melody checkpoints saw during training and at CFG time; `null="zeros"` gives the
usual zeros + all-False mask instead.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config
from ..errors import ConfigError
from .base import ConditionTensors, Conditioner

PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
NULL_MODES = ("first_bin", "zeros")


def chroma_filter_bank(sample_rate: int, n_fft: int, n_chroma: int = 12, tuning: float = 0.0) -> torch.Tensor:
    """Map power-spectrogram bins to pitch classes: [n_chroma, n_fft // 2 + 1], row 0 = C.

    The maths of librosa's `filters.chroma` with its defaults (octave weighting 5 +- 2, L2 norm).
    """
    freqs = np.arange(1, n_fft, dtype=np.float64) * sample_rate / n_fft  # skip DC, handled below
    a440 = 440.0 * 2.0 ** (tuning / n_chroma)
    pos = n_chroma * np.log2(freqs / (a440 / 16.0))  # position in chroma bins, counted from A0/16
    pos = np.concatenate([[pos[0] - 1.5 * n_chroma], pos])  # DC: 1.5 octaves below the first bin
    width = np.concatenate([np.maximum(np.diff(pos), 1.0), [1.0]])
    half = np.round(n_chroma / 2.0)
    # Distance from each bin to each pitch class, wrapped into [-half, half).
    dist = np.remainder(pos[None, :] - np.arange(n_chroma)[:, None] + half + 10 * n_chroma, n_chroma) - half
    bank = np.exp(-0.5 * (2.0 * dist / width[None, :]) ** 2)
    bank = bank / np.sqrt(np.sum(bank**2, axis=0, keepdims=True))
    bank = bank * np.exp(-0.5 * ((pos / n_chroma - 5.0) / 2.0) ** 2)[None, :]
    bank = np.roll(bank, -3 * (n_chroma // 12), axis=0)  # rows counted from A -> from C
    return torch.from_numpy(np.ascontiguousarray(bank[:, : n_fft // 2 + 1])).float()


def sinc_resample(wav: torch.Tensor, orig_sr: int, new_sr: int, zeros: int = 24, rolloff: float = 0.945) -> torch.Tensor:
    """Band-limited resampling of [..., T] with a Hann-windowed sinc.

    The kernel transformers' melody feature extractor uses (torchaudio `resample` with
    lowpass_filter_width=24, rolloff=0.945), computed the same way so a 44.1 kHz melody gives the
    same chroma as there. The rates are reduced by their gcd; each of the `new` output phases has
    its own FIR kernel and a strided convolution applies them all at once.
    """
    if orig_sr == new_sr:
        return wav
    g = math.gcd(int(orig_sr), int(new_sr))
    orig, new = int(orig_sr) // g, int(new_sr) // g
    cutoff = min(orig, new) * rolloff  # in units of the reduced rates
    half = math.ceil(zeros * orig / cutoff)  # taps each side: `zeros` sinc zero-crossings
    taps = torch.arange(-half, half + orig, dtype=wav.dtype, device=wav.device) / orig
    phases = torch.arange(0, -new, -1, dtype=wav.dtype, device=wav.device)[:, None] / new
    x = ((phases + taps) * cutoff).clamp(-zeros, zeros)
    window = torch.cos(x * math.pi / zeros / 2) ** 2
    x = x * math.pi
    kernel = torch.where(x == 0, torch.ones_like(x), x.sin() / x) * (window * (cutoff / orig))
    shape = wav.shape
    flat = F.pad(wav.reshape(-1, 1, shape[-1]), (half, half + orig))
    out = F.conv1d(flat, kernel[:, None, :], stride=orig).transpose(1, 2).reshape(flat.shape[0], -1)
    return out[:, : math.ceil(new * shape[-1] / orig)].reshape(*shape[:-1], -1)


@dataclass
class ChromaConfig(Config):
    sample_rate: int = 32000
    n_fft: int = 16384
    win_length: int | None = None  # None: n_fft
    hop_length: int | None = None  # None: win_length // 4 (audiocraft's rule)
    n_chroma: int = 12
    argmax: bool = True  # one-hot quantisation, as MusicGen-melody

    def __post_init__(self) -> None:
        win = self.win_length or self.n_fft
        hop = self.hop_length or win // 4
        if self.sample_rate <= 0 or self.n_fft <= 0 or win > self.n_fft or hop <= 0 or self.n_chroma <= 0:
            raise ConfigError(
                f"ChromaConfig: need positive sample_rate/n_fft/hop_length/n_chroma and win_length <= n_fft; "
                f"got sample_rate={self.sample_rate}, n_fft={self.n_fft}, win_length={win}, hop_length={hop}"
            )


class ChromaExtractor(nn.Module):
    """Waveform [B, T] or [B, C, T] (channels are averaged) -> chroma [B, frames, n_chroma]."""

    def __init__(self, config: ChromaConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or ChromaConfig()
        self.n_fft = config.n_fft
        self.win_length = config.win_length or config.n_fft
        self.hop_length = config.hop_length or self.win_length // 4
        self.sample_rate = config.sample_rate
        self.register_buffer("window", torch.hann_window(self.win_length), persistent=False)
        self.register_buffer(
            "filters", chroma_filter_bank(config.sample_rate, config.n_fft, config.n_chroma), persistent=False
        )

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for a clip of `num_samples` (centred STFT of the clip padded to n_fft)."""
        return 1 + max(num_samples, self.n_fft) // self.hop_length

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        if wav.dim() == 3:
            wav = wav.mean(dim=1)
        if wav.dim() != 2:
            raise ValueError(f"ChromaExtractor expects [B, T] or [B, C, T], got {tuple(wav.shape)}")
        wav = wav.to(self.window.dtype)
        short = self.n_fft - wav.shape[-1]
        if short > 0:  # centre a short clip in zeros so the reflect padding of the STFT is defined
            wav = F.pad(wav, (short // 2, short - short // 2))
        spec = torch.stft(
            wav, self.n_fft, hop_length=self.hop_length, win_length=self.win_length, window=self.window,
            center=True, pad_mode="reflect", normalized=False, onesided=True, return_complex=True,
        )
        power = spec.real.square() + spec.imag.square()
        power = power / self.window.square().sum()  # torchaudio's normalized=True, squared
        chroma = torch.einsum("cf,bft->btc", self.filters, power)
        chroma = chroma / chroma.abs().amax(dim=-1, keepdim=True).clamp_min(1e-6)
        if self.config.argmax:
            chroma = F.one_hot(chroma.argmax(dim=-1), chroma.shape[-1]).to(chroma.dtype)
        return chroma


@dataclass
class ChromaConditionerConfig(Config):
    output_dim: int = 1024  # LM width
    chroma: ChromaConfig = field(default_factory=ChromaConfig)
    length: int | None = 235  # tile or cut to this many frames (Meta: 30 s); None: own length + mask
    max_duration: float | None = 30.0  # melody audio beyond this is ignored (HF cuts at 30 s)
    null: str = "first_bin"  # "first_bin" (Meta's null melody) | "zeros" (zeros, masked out)
    project: bool = True

    def __post_init__(self) -> None:
        if self.null not in NULL_MODES:
            raise ConfigError(f"ChromaConditionerConfig.null must be one of {list(NULL_MODES)}, got {self.null!r}")
        if self.length is not None and self.length <= 0:
            raise ConfigError(f"ChromaConditionerConfig.length must be positive or null, got {self.length}")


MelodyRow = torch.Tensor | np.ndarray | tuple[Any, int] | None


class ChromaConditioner(Conditioner):
    """Melody waveforms -> chroma -> `output_proj` -> ConditionTensors (prepended by MusicGen-melody)."""

    def __init__(self, config: ChromaConditionerConfig | None = None) -> None:
        config = config or ChromaConditionerConfig()
        super().__init__(config.chroma.n_chroma, config.output_dim, project=config.project)
        self.config = config
        self.extractor = ChromaExtractor(config.chroma)

    @property
    def sample_rate(self) -> int:
        return self.extractor.sample_rate

    def tokenize(self, batch: Sequence[MelodyRow], sample_rate: int | None = None) -> dict[str, Any]:
        """Rows: None (null melody), a waveform [T] or [C, T], or a (waveform, sample_rate) pair.

        Mono mix-down, resampling to the extractor's rate, cutting to `max_duration` and zero
        padding to the longest row all happen here, on the CPU.
        """
        if isinstance(batch, (torch.Tensor, np.ndarray)):
            batch = list(batch)  # a [B, T] or [B, C, T] array: one row per item
        if len(batch) == 0:
            raise ValueError("ChromaConditioner: the batch of melodies is empty")
        rows: list[torch.Tensor | None] = []
        for i, row in enumerate(batch):
            rows.append(None if row is None else self._prepare(row, sample_rate, i))
        limit = None if self.config.max_duration is None else int(self.config.max_duration * self.sample_rate)
        rows = [r if r is None or limit is None else r[:limit] for r in rows]
        lengths = torch.tensor([0 if r is None else r.shape[-1] for r in rows], dtype=torch.long)
        wav = torch.zeros(len(rows), int(lengths.max()))
        for i, r in enumerate(rows):
            if r is not None:
                wav[i, : r.shape[-1]] = r
        null = torch.tensor([r is None for r in rows], dtype=torch.bool)
        return {"wav": wav, "lengths": lengths, "null": null}

    def _prepare(self, row: Any, sample_rate: int | None, index: int) -> torch.Tensor:
        sr = sample_rate or self.sample_rate
        if isinstance(row, tuple):
            if len(row) != 2:
                raise TypeError(f"ChromaConditioner: row {index} must be (waveform, sample_rate)")
            row, sr = row
        wav = torch.as_tensor(np.asarray(row) if not isinstance(row, torch.Tensor) else row).detach().float().cpu()
        if wav.dim() == 2:
            wav = wav.mean(dim=0)
        if wav.dim() != 1 or wav.numel() == 0:
            raise ValueError(f"ChromaConditioner: melody {index} must be a non-empty [T] or [C, T] waveform, "
                             f"got shape {tuple(wav.shape)}")
        if not torch.isfinite(wav).all():
            raise ValueError(f"ChromaConditioner: melody {index} contains NaN or infinite samples")
        if int(sr) <= 0:
            raise ValueError(f"ChromaConditioner: melody {index} has sample rate {sr}; it must be positive")
        return sinc_resample(wav, int(sr), self.sample_rate)

    def forward(self, tokenized: dict[str, Any]) -> ConditionTensors:  # type: ignore[override]
        t = self._to_device(tokenized)
        chroma = self.extractor(t["wav"])  # [B, F, 12]
        frames = chroma.shape[1]
        null = t["null"]
        if self.config.length is None:
            valid = torch.tensor([self.extractor.num_frames(int(n)) for n in t["lengths"]], device=chroma.device)
            mask = torch.arange(frames, device=chroma.device)[None, :] < valid[:, None]
        else:
            # Meta tiles a short chroma (and cuts a long one) to the trained length, unmasked.
            reps = math.ceil(self.config.length / frames)
            chroma = chroma.repeat(1, reps, 1)[:, : self.config.length]
            mask = torch.ones(chroma.shape[:2], dtype=torch.bool, device=chroma.device)
        if self.config.null == "first_bin":
            first = torch.zeros_like(chroma[:1])
            first[..., 0] = 1.0
            chroma = torch.where(null[:, None, None], first, chroma)
            mask = mask | null[:, None]
        else:
            mask = mask & ~null[:, None]
        return self._project_masked(chroma, mask)
