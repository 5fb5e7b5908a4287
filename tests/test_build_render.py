"""Soundfont rendering and the music builder, on a sine soundfont written by the test itself."""
import json

import numpy as np
import pytest
import soundfile

from wavecraft.cli import main
from wavecraft.data.manifest import load_info, read_manifest
from wavecraft.data.render import Note, Piece, Track, render_piece
from wavecraft.data.tiny_soundfont import write_sine_soundfont

pytest.importorskip("tinysoundfont", reason="rendering needs `pip install --no-deps tinysoundfont`")
SR = 16000


@pytest.fixture(scope="module")
def font(tmp_path_factory):
    return str(write_sine_soundfont(tmp_path_factory.mktemp("sf") / "sine.sf2"))


def test_note_pitch_and_onset(font):
    for pitch in (57, 69, 76):
        audio = render_piece(Piece([Track("m", 0, [Note(0.2, 0.6, pitch, 100)])], 1.0), font, SR, tail=0.5)
        assert len(audio) == int(1.5 * SR)
        onset = np.argmax(np.abs(audio) > 0.02) / SR
        assert abs(onset - 0.2) < 0.01
        seg = audio[int(0.3 * SR) : int(0.7 * SR)]
        spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg))))
        freq = np.fft.rfftfreq(len(seg), 1 / SR)[np.argmax(spec)]
        assert abs(freq - 440 * 2 ** ((pitch - 69) / 12)) < 5
        assert np.abs(audio[int(1.2 * SR) :]).max() < 1e-3  # released and silent again


def test_tracks_are_mixed_at_their_levels(font):
    a = Track("a", 0, [Note(0.0, 1.0, 69, 100)], level_db=0.0)
    b = Track("b", 0, [Note(0.0, 1.0, 81, 40)], level_db=-12.0)  # quiet velocity, but levels are RMS-matched
    audio = render_piece(Piece([a, b], 1.0), font, SR)
    seg = audio[int(0.2 * SR) : int(0.9 * SR)]
    spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg))))
    f = np.fft.rfftfreq(len(seg), 1 / SR)
    amp = lambda hz: spec[np.abs(f - hz) < 10].max()  # noqa: E731
    assert 20 * np.log10(amp(440) / amp(880)) == pytest.approx(12.0, abs=1.5)


def test_build_music_generated_only_end_to_end(tmp_path, font, capsys):
    out = tmp_path / "music"
    args = ["data", "build-music", str(out), "--limit", "6", "--generated-fraction", "1", "--soundfonts", font,
            "--sample-rate", str(SR), "--clip-seconds", "12", "--workers", "1", "--no-progress"]
    assert main(args) == 0
    assert "built music" in capsys.readouterr().out
    info = json.loads((out / "build_info.json").read_text())
    assert sum(info["items"].values()) >= 6 and not info["failures"]
    rows = [m for split in ("train", "valid", "eval") if (out / split / "data.jsonl").exists()
            for m in read_manifest(out / split / "data.jsonl")]
    assert len(rows) == sum(info["items"].values())
    for meta in rows:
        side = load_info(meta)
        audio, sr = soundfile.read(meta.path)
        assert sr == SR and abs(len(audio) / sr - meta.duration) < 1e-3 and meta.duration <= 12 * 1.1
        assert str(side["bpm"]) in side["description"] and side["key"] in side["description"]
        assert side["source"] == "generated" and side["soundfont"] == "sine" and -30 < side["rms_db"] < -10
    # Same seed, same plan: a forced rebuild writes identical manifests and audio.
    first = {p.name: p.read_bytes() for p in sorted(out.rglob("*.wav"))}
    assert main(args) == 2 and "--force" in capsys.readouterr().err
    assert main(args + ["--force"]) == 0
    assert {p.name: p.read_bytes() for p in sorted(out.rglob("*.wav"))} == first
