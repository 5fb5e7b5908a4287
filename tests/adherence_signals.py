"""Synthetic test signals with known tempo / key, shared by the adherence metric tests."""
from __future__ import annotations

import math

import torch

MAJOR_TRIADS = [(0, 4, 7), (5, 9, 12), (7, 11, 14), (0, 4, 7)]  # I IV V I
MINOR_TRIADS = [(0, 3, 7), (5, 8, 12), (7, 11, 14), (0, 3, 7)]  # i iv V i (raised leading tone)
MAJOR_SCALE = [0, 2, 4, 5, 7, 9, 11]
HARMONIC_MINOR = [0, 2, 3, 5, 7, 8, 11]


def click_track(bpm: float, sr: int = 16000, seconds: float = 10.0, seed: int = 0) -> torch.Tensor:
    """1 kHz blips on every beat, the downbeat of each 4-beat bar louder, over faint noise."""
    g = torch.Generator().manual_seed(seed)
    n = int(sr * seconds)
    out = torch.zeros(n)
    length = int(0.03 * sr)
    blip = torch.exp(-torch.arange(length) / (0.005 * sr)) * torch.sin(2 * math.pi * 1000 * torch.arange(length) / sr)
    beat, k = 0.25, 0
    while beat < seconds - 0.05:
        i = int(beat * sr)
        out[i:i + length] += (1.0 if k % 4 == 0 else 0.6) * blip[: n - i]
        beat += 60.0 / bpm
        k += 1
    return 0.5 * out + 0.001 * torch.randn(n, generator=g)


def drum_loop(bpm: float, sr: int = 16000, seconds: float = 10.0, seed: int = 0) -> torch.Tensor:
    """Kick on beats 1 and 3, snare on 2 and 4, closed hi-hat on every eighth note."""
    g = torch.Generator().manual_seed(seed)
    n = int(sr * seconds)
    out = torch.zeros(n)

    def add(t: float, sig: torch.Tensor) -> None:
        i = int(t * sr)
        m = min(sig.numel(), n - i)
        if m > 0:
            out[i:i + m] += sig[:m]

    tk = torch.arange(int(0.25 * sr)) / sr
    kick = torch.sin(2 * math.pi * (50 * tk + 2.4 * (1 - torch.exp(-tk / 0.03)))) * torch.exp(-tk / 0.12)
    ls = int(0.2 * sr)
    snare = 0.6 * torch.randn(ls, generator=g) * torch.exp(-torch.arange(ls) / (0.05 * sr))
    lh = int(0.05 * sr)
    hiss = torch.randn(lh, generator=g)
    hat = 0.15 * (hiss - torch.roll(hiss, 1)) * torch.exp(-torch.arange(lh) / (0.01 * sr))
    beat, b = 60.0 / bpm, 0
    while 0.1 + b * beat < seconds:
        t = 0.1 + b * beat
        add(t, kick if b % 2 == 0 else snare)
        add(t, hat)
        add(t + beat / 2, 0.7 * hat)
        b += 1
    return 0.5 * out + 0.001 * torch.randn(n, generator=g)


def tone(midi: int, seconds: float, sr: int, harmonics: int = 6) -> torch.Tensor:
    """A plucked harmonic tone: partials 1..harmonics at 1/k amplitude, decaying."""
    f = 440.0 * 2 ** ((midi - 69) / 12)
    t = torch.arange(int(seconds * sr)) / sr
    x = sum((1.0 / k) * torch.sin(2 * math.pi * k * f * t) for k in range(1, harmonics + 1) if k * f < sr / 2)
    return x * torch.clamp(t / 0.01, max=1) * torch.exp(-t / (0.8 * seconds))


def progression(tonic: int, mode: str, sr: int = 16000, chord_seconds: float = 0.8, repeats: int = 2) -> torch.Tensor:
    """I-IV-V-I (major) or i-iv-V-i (minor) triads with the root doubled in the bass, `repeats` times."""
    triads = MAJOR_TRIADS if mode == "major" else MINOR_TRIADS
    base = 48 + tonic
    chords = [sum(tone(base + n, chord_seconds, sr) for n in tr) + tone(base - 12 + tr[0], chord_seconds, sr)
              for tr in triads]
    return 0.2 * torch.cat(chords * repeats)


def scale(tonic: int, mode: str, sr: int = 16000, note_seconds: float = 0.3) -> torch.Tensor:
    """Up and down a major / harmonic minor scale, first and last notes held twice as long."""
    steps = MAJOR_SCALE if mode == "major" else HARMONIC_MINOR
    notes = steps + [12] + steps[::-1]
    parts = [tone(60 + tonic + n, note_seconds * (2 if i in (0, len(notes) - 1) else 1), sr)
             for i, n in enumerate(notes)]
    return 0.3 * torch.cat(parts)


def song(bpm: float, tonic: int, mode: str, sr: int = 16000, seconds: float = 8.0) -> torch.Tensor:
    """Drums at `bpm` plus the key's chord progression, one chord per bar."""
    drums = drum_loop(bpm, sr, seconds)
    chords = progression(tonic, mode, sr, chord_seconds=4 * 60.0 / bpm, repeats=8)
    chords = chords[: drums.numel()]
    return drums + torch.nn.functional.pad(chords, (0, drums.numel() - chords.numel()))
