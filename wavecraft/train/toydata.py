"""A small synthetic dataset (sines, chords, noise bursts with captions) for tests and smoke runs.

`make_toy_dataset(folder)` writes WAV files, audiocraft-style sidecar JSON metadata and a
`data.jsonl` manifest, so a recipe can be tried end to end without any real audio.
"""
from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np

NOTE_NAMES = ("C", "D", "E", "F", "G", "A", "B")
_SEMITONES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def _freq(note: str, octave: int) -> float:
    midi = 12 * (octave + 1) + _SEMITONES[note]
    return 440.0 * 2 ** ((midi - 69) / 12)


def _clip(kind: str, rng: random.Random, sample_rate: int, duration: float) -> tuple[np.ndarray, dict]:
    n = int(sample_rate * duration)
    t = np.arange(n) / sample_rate
    note = rng.choice(NOTE_NAMES)
    if kind == "sine":
        f = _freq(note, 4)
        wav = 0.5 * np.sin(2 * math.pi * f * t)
        info = {"description": f"a pure sine tone on {note}", "genre": "test tone", "key": note,
                "instrument": "sine", "moods": ["calm"]}
    elif kind == "chord":
        root = _SEMITONES[note]
        freqs = [_freq(note, 3) * 2 ** (s / 12) for s in (0, 4, 7)]
        wav = sum(0.2 * np.sin(2 * math.pi * f * t) for f in freqs)
        info = {"description": f"a major chord on {note}", "genre": "ambient", "key": f"{note} major",
                "instrument": "synth pad", "moods": ["bright", "warm"], "bpm": 60 + 4 * root}
    else:
        noise = np.random.default_rng(rng.getrandbits(32)).standard_normal(n)
        env = np.zeros(n)
        period = int(sample_rate * rng.choice((0.25, 0.5)))
        for start in range(0, n, period):
            length = min(period // 3, n - start)
            env[start:start + length] = np.exp(-np.arange(length) / (0.03 * sample_rate))
        wav = 0.4 * noise * env
        info = {"description": "short bursts of noise like a drum machine", "genre": "electronic",
                "instrument": "drums", "moods": ["energetic"], "bpm": int(60 / (period / sample_rate))}
    return wav.astype(np.float32), info


def make_toy_dataset(folder: str | Path, n_files: int = 12, sample_rate: int = 8000, duration: float = 2.0,
                     seed: int = 0) -> Path:
    """Write `n_files` clips cycling through sine / chord / noise, their sidecars and `data.jsonl`.

    Returns the manifest path. Paths in the manifest are relative to the folder.
    """
    import soundfile

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    lines = []
    for i in range(n_files):
        kind = ("sine", "chord", "noise")[i % 3]
        wav, info = _clip(kind, rng, sample_rate, duration)
        name = f"{kind}_{i:03d}"
        soundfile.write(str(folder / f"{name}.wav"), wav, sample_rate, subtype="PCM_16")
        (folder / f"{name}.json").write_text(json.dumps(info))
        lines.append({"path": f"{name}.wav", "duration": len(wav) / sample_rate, "sample_rate": sample_rate})
    manifest = folder / "data.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return manifest
