"""Key and mode estimation (profile correlation) and the MIREX weighted key score.

Method (Krumhansl-Schmuckler, on audio):

1. **Clip chroma.** The power spectrogram (Hann window of ~0.25 s, so low notes a semitone apart
   fall in different bins) folded onto 12 pitch classes by the melody conditioner's filter bank
   (`conditioners.chroma.chroma_filter_bank`, librosa's maths). Each frame is normalised to sum 1
   (frames more than 40 dB below the loudest are dropped), the frames are summed and the result
   square-rooted, so a pitch class counts by how long it sounds, and a few loud partials cannot
   outvote the rest of the harmony.
2. **Profiles.** The clip chroma is correlated (Pearson) with a 12-value key profile rotated to
   each of the 12 tonics, for major and minor: 24 scores. Temperley's profiles (pitch-class counts
   in the Kostka-Payne harmony textbook corpus) are the default: on 54 renders of the music
   builder they scored 0.66 MIREX against 0.62 for Krumhansl-Kessler's probe-tone ratings (also
   offered, `profile="krumhansl"`).
3. **Choice.** The best of the 24 is the estimate.

Harmonic tones put energy on the fifth and major third of every note (partials 3 and 5), and a
key shares its pitch set with its relative major/minor, so the usual errors are a fifth away or
relative: the MIREX score gives those partial credit. Silence has no key: `estimate_key` returns
None, which scores 0.
"""
from __future__ import annotations

import math
import re
from typing import NamedTuple

import torch

from ..conditioners.chroma import chroma_filter_bank
from ..data.gm import key_name
from ..train.losses import stft_magnitude
from .tempo import as_mono

MODES = ("major", "minor")
# Probe-tone ratings, tonic first (Krumhansl & Kessler 1982).
KRUMHANSL = {
    "major": (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88),
    "minor": (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17),
}
# Pitch-class frequencies in the Kostka-Payne corpus, tonic first (Temperley 2001).
TEMPERLEY = {
    "major": (0.748, 0.060, 0.488, 0.082, 0.670, 0.460, 0.096, 0.715, 0.104, 0.366, 0.057, 0.400),
    "minor": (0.712, 0.084, 0.474, 0.618, 0.049, 0.460, 0.105, 0.747, 0.404, 0.067, 0.133, 0.330),
}
PROFILES = {"krumhansl": KRUMHANSL, "temperley": TEMPERLEY}

_NOTE = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
_MODE_WORDS = {"": None, "major": "major", "maj": "major", "minor": "minor", "min": "minor", "m": "minor"}
_KEY_RE = re.compile(r"^\s*([a-g])\s*([#b♯♭]*)\s*[:\s-]?\s*([a-z]*)\s*$")


class Key(NamedTuple):
    tonic: int  # pitch class, 0 = C
    mode: str  # "major" | "minor"

    @property
    def name(self) -> str:
        """Conventional spelling, the one the captions use: 'Eb major', 'C# minor'."""
        return key_name(self.tonic, self.mode)


def parse_key(text: str | Key, mode: str | None = None) -> Key:
    """'E minor', 'Eb major', 'C#:min', 'F#m', 'Bb' (+ mode='minor') -> Key.

    A mode in the text wins over `mode`; with neither, the key is an error (never guessed).
    """
    if isinstance(text, Key):
        return text
    m = _KEY_RE.match(str(text).lower())
    word = m.group(3) if m else None
    if m is None or word not in _MODE_WORDS or any(c not in "#b♯♭" for c in m.group(2)):
        raise ValueError(f"cannot read key {text!r}: write a tonic and a mode, e.g. 'E minor' or 'Bb major'")
    tonic = _NOTE[m.group(1)] + sum(1 if c in "#♯" else -1 for c in m.group(2))
    found = _MODE_WORDS[word] or (mode.lower() if isinstance(mode, str) else None)
    if found not in MODES:
        raise ValueError(f"key {text!r} has no mode: give 'major' or 'minor' (got mode={mode!r})")
    return Key(tonic % 12, found)


def clip_chroma(wav: torch.Tensor, sample_rate: int, window_seconds: float = 0.25) -> torch.Tensor:
    """Whole-clip chroma [12] (C first), summing to 1; all zeros for silence.

    Every frame within 40 dB of the loudest one is normalised to sum 1 before the frames are
    added, so the result counts how long each pitch class sounds (what the key profiles
    describe) rather than how loud it is.
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    x = as_mono(wav)
    n_fft = 2 ** max(9, round(math.log2(sample_rate * window_seconds)))
    power = stft_magnitude(x[None], n_fft, n_fft // 4, n_fft)[0].double().square()  # [F, frames]
    frames = chroma_filter_bank(sample_rate, n_fft).double() @ power  # [12, frames]
    energy = frames.sum(dim=0)
    if energy.max() <= 1e-12:
        return torch.zeros(12)
    voiced = energy > energy.max() * 1e-4
    chroma = (frames[:, voiced] / energy[voiced]).sum(dim=1).sqrt()
    return (chroma / chroma.sum()).float()


def key_scores(chroma: torch.Tensor, profile: str = "temperley") -> torch.Tensor:
    """Pearson correlation of a 12-bin chroma with the 24 rotated profiles: [2, 12]
    (row 0 major, row 1 minor; column = tonic pitch class)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown key profile {profile!r}; choose one of {sorted(PROFILES)}")
    c = chroma.double().flatten()
    if c.numel() != 12:
        raise ValueError(f"key_scores needs a 12-bin chroma, got {c.numel()} values")
    c = c - c.mean()
    rows = []
    for mode in MODES:
        p = torch.tensor(PROFILES[profile][mode], dtype=torch.float64)
        # Column t holds the profile with its tonic moved to pitch class t.
        rotated = torch.stack([torch.roll(p, t) for t in range(12)])
        rotated = rotated - rotated.mean(dim=1, keepdim=True)
        denom = rotated.norm(dim=1) * c.norm()
        rows.append(rotated @ c / denom.clamp(min=1e-12))
    return torch.stack(rows).float()


def estimate_key(wav: torch.Tensor, sample_rate: int, profile: str = "temperley") -> Key | None:
    """The best-matching of the 24 major/minor keys, or None for a clip without pitched content."""
    chroma = clip_chroma(wav, sample_rate)
    if chroma.max() - chroma.min() < 1e-6:  # silence or perfectly flat noise: no evidence at all
        return None
    scores = key_scores(chroma, profile)
    best = int(scores.flatten().argmax())
    return Key(best % 12, MODES[best // 12])


def mirex_key_score(estimate: Key | str | None, reference: Key | str) -> float:
    """MIREX weighted key score: 1 same key; 0.5 estimate a fifth above, same mode; 0.3 relative
    major/minor; 0.2 parallel (same tonic, other mode); 0 otherwise (also for None).

    Only the fifth *above* the reference earns 0.5, as in MIREX and mir_eval's default.
    """
    ref = parse_key(reference)
    if estimate is None:
        return 0.0
    est = parse_key(estimate)
    up = (est.tonic - ref.tonic) % 12
    if est == ref:
        return 1.0
    if est.mode == ref.mode and up == 7:
        return 0.5
    if est.mode != ref.mode and up == (9 if ref.mode == "major" else 3):
        return 0.3
    if est.mode != ref.mode and up == 0:
        return 0.2
    return 0.0
