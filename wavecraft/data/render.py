"""Render note lists to audio through General MIDI soundfonts with tinysoundfont.

A `Piece` is plain data: tracks of notes in seconds, each with a GM program (or a drum kit).
Rendering plays each track on its own through the synthesiser, measures it, and mixes the tracks
at the levels the piece asks for. Rendering tracks separately costs no more than rendering them
together (the synthesiser's cost is per sounding voice) and makes the mix independent of how
loud each soundfont happens to be, so "bass at -6 dB under the lead" means the same everywhere.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from ..errors import WavecraftError
from .sources import SourceMissingError


@dataclasses.dataclass
class Note:
    start: float  # seconds
    duration: float  # seconds
    pitch: int  # MIDI key; for drums the GM percussion key
    velocity: int  # 1..127


@dataclasses.dataclass
class Track:
    role: str  # "melody", "chords", "bass", "drums", "part1", ...
    program: int  # GM program 0..127; for drums the kit preset (bank 128)
    notes: list[Note]
    is_drums: bool = False
    level_db: float = 0.0  # mix level relative to the other tracks (RMS based)
    drumkit_path: str | None = None  # render drums through this soundfont (bank 0, preset 0) instead


@dataclasses.dataclass
class Piece:
    tracks: list[Track]
    duration: float  # seconds of music; the render adds a release tail

    def end_time(self) -> float:
        ends = [n.start + n.duration for t in self.tracks for n in t.notes]
        return max(ends, default=0.0)


_SYNTHS: dict[tuple[str, int], object] = {}


def _load_synth(path: str, sample_rate: int):
    """One tinysoundfont Synth per (soundfont, rate) per process: loading an sf3 takes seconds."""
    key = (path, sample_rate)
    if key not in _SYNTHS:
        try:
            import tinysoundfont
        except ImportError:
            raise SourceMissingError(
                "rendering music needs tinysoundfont: run `pip install --no-deps tinysoundfont`"
            ) from None
        if not Path(path).is_file():
            raise WavecraftError(f"soundfont not found: {path}")
        synth = tinysoundfont.Synth(samplerate=sample_rate)
        try:
            sfid = synth.sfload(path, max_voices=256)
        except Exception as err:  # noqa: BLE001 - the binding raises plain Exception on bad files
            raise WavecraftError(f"cannot load soundfont {path}: {err}") from None
        _SYNTHS[key] = (synth, sfid)
    return _SYNTHS[key]


def has_preset(soundfont: str, bank: int, preset: int, sample_rate: int = 32000) -> bool:
    synth, sfid = _load_synth(soundfont, sample_rate)
    return synth.sfpreset_name(sfid, bank, preset) is not None


def render_track(track: Track, soundfont: str, sample_rate: int, length: int) -> np.ndarray:
    """Mono float32 audio of one track, `length` samples long."""
    path = track.drumkit_path if (track.is_drums and track.drumkit_path) else soundfont
    synth, sfid = _load_synth(path, sample_rate)
    channel = 9 if track.is_drums else 0
    # AVL kits have one preset (bank 0) with the GM key map; GM fonts keep kits in bank 128.
    bank, preset = (0, 0) if (track.is_drums and track.drumkit_path) else (128 if track.is_drums else 0, track.program)
    try:
        synth.program_select(channel, sfid, bank, preset, is_drums=track.is_drums and not track.drumkit_path)
    except RuntimeError:
        raise WavecraftError(f"soundfont {path} has no preset {preset} in bank {bank} (for the {track.role} track)") from None
    synth.control_change(channel, 7, 100)  # channel volume: same for every track, mixing is ours
    # Events as (sample, order, kind, key, velocity); note-offs sort before note-ons at one instant
    # so a repeated key retriggers instead of being cut by its own release.
    events = []
    for note in track.notes:
        on = int(round(note.start * sample_rate))
        off = int(round((note.start + max(note.duration, 0.01)) * sample_rate))
        if on >= length or not 0 <= note.pitch <= 127:
            continue
        events.append((on, 1, note.pitch, max(1, min(127, int(note.velocity)))))
        events.append((min(off, length), 0, note.pitch, 0))
    events.sort()
    out = np.zeros((length, 2), dtype=np.float32)
    cursor = 0
    for sample, kind, key, velocity in events:
        if sample > cursor:
            buf = synth.generate_simple(sample - cursor)
            out[cursor:sample] = np.frombuffer(buf, dtype=np.float32).reshape(-1, 2)
            cursor = sample
        if kind == 1:
            synth.noteon(channel, key, velocity)
        else:
            synth.noteoff(channel, key)
    if cursor < length:
        buf = synth.generate_simple(length - cursor)
        out[cursor:] = np.frombuffer(buf, dtype=np.float32).reshape(-1, 2)
    # Silence the channel completely so the next track starts from a clean synthesiser.
    synth.sounds_off(channel)
    synth.control_change(channel, 121, 0)
    synth.generate_simple(256)
    return out.mean(axis=1)


def _rms_db(x: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0
    return 20.0 * math.log10(rms) if rms > 1e-9 else -math.inf


def render_piece(piece: Piece, soundfont: str, sample_rate: int, tail: float = 1.0) -> np.ndarray:
    """Mono float32 mix of `piece`, duration + `tail` seconds, peak below full scale."""
    length = int(math.ceil((piece.duration + tail) * sample_rate))
    mix = np.zeros(length, dtype=np.float64)
    for track in piece.tracks:
        if not track.notes:
            continue
        audio = render_track(track, soundfont, sample_rate, length)
        level = _rms_db(audio[: int(piece.duration * sample_rate)] if piece.duration > 0 else audio)
        if not math.isfinite(level):
            continue
        # Every track is brought to -20 dB RMS before its mix offset: soundfonts differ by 10+ dB.
        mix += audio * 10.0 ** ((-20.0 + track.level_db - level) / 20.0)
    fade = min(length, int(0.05 * sample_rate))
    if fade:
        mix[-fade:] *= np.linspace(1.0, 0.0, fade)
    peak = float(np.abs(mix).max()) if mix.size else 0.0
    if peak > 0.98:
        mix *= 0.98 / peak
    return mix.astype(np.float32)
