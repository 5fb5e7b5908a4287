"""Splits, audio clean-up, item writing and the output-folder rules shared by both builders."""
import collections
import json

import numpy as np
import pytest
import torch

from wavecraft.data import build_util, sources
from wavecraft.data.manifest import load_info, read_manifest
from wavecraft.errors import WavecraftError
from wavecraft.loudness import integrated_loudness


def test_split_is_deterministic_and_near_the_fractions():
    keys = [f"work{i}" for i in range(4000)]
    splits = [build_util.split_of(k, 0, 0.05, 0.1) for k in keys]
    assert splits == [build_util.split_of(k, 0, 0.05, 0.1) for k in keys]
    counts = collections.Counter(splits)
    assert abs(counts["eval"] / 4000 - 0.1) < 0.02 and abs(counts["valid"] / 4000 - 0.05) < 0.015
    # Another seed reshuffles; adding keys never moves existing ones.
    assert splits != [build_util.split_of(k, 1, 0.05, 0.1) for k in keys]
    assert build_util.split_of("work7", 0, 0.05, 0.1) == splits[7]


def test_trim_silence_keeps_the_sound_and_a_little_padding():
    sr = 16000
    x = np.zeros(sr * 3, np.float32)
    x[sr : 2 * sr] = 0.5 * np.sin(np.arange(sr) * 0.1)
    y = build_util.trim_silence(x, sr, pad_seconds=0.05)
    assert abs(len(y) - int(1.1 * sr)) <= int(0.04 * sr)
    assert build_util.trim_silence(np.zeros(sr, np.float32), sr).size == 0


def test_split_long_gives_equal_chunks_within_limits():
    sr = 1000
    chunks = build_util.split_long(np.ones(25 * sr), sr, 10.0, 1.0)
    assert [len(c) for c in chunks] == [8334, 8334, 8332]
    assert build_util.split_long(np.ones(500), sr, 10.0, 1.0) == []
    assert len(build_util.split_long(np.ones(4 * sr), sr, 10.0, 1.0)) == 1


def test_loudness_normalisation_hits_target_or_stops_at_the_peak():
    sr = 32000
    rng = np.random.default_rng(0)
    x = (0.01 * rng.standard_normal(sr * 3)).astype(np.float32)
    y, before = build_util.normalise_loudness(x, sr, -20.0)
    assert before < -35 and integrated_loudness(torch.from_numpy(y)[None], sr) == pytest.approx(-20.0, abs=0.1)
    spike = x.copy()
    spike[100] = 1.0  # a click: the peak limit wins over the loudness target
    z, _ = build_util.normalise_loudness(spike, sr, -10.0)
    assert np.abs(z).max() == pytest.approx(10 ** (-1 / 20), rel=1e-4)


def test_items_round_trip_through_manifest_and_sidecar(tmp_path):
    sr = 16000
    rows = []
    for i, split in enumerate(["train", "train", "eval"]):
        info = {"description": f"clip {i}", "sound_class": "beep"}
        rows.append(build_util.write_item(tmp_path, split, f"c{i}", np.full(sr // 2, 0.1, np.float32), sr, info))
        assert info["split"] == split and info["duration"] == 0.5  # the caller's dict is completed
    counts = build_util.write_manifests(tmp_path, rows)
    assert counts == {"train": 2, "valid": 0, "eval": 1}
    metas = read_manifest(tmp_path / "train" / "data.jsonl")
    assert [m.duration for m in metas] == [0.5, 0.5] and metas[0].sample_rate == sr
    assert load_info(metas[1])["description"] == "clip 1"
    assert json.loads((tmp_path / "train" / "data.jsonl").read_text().splitlines()[0])["path"] == "audio/c0.wav"
    assert not (tmp_path / "valid" / "data.jsonl").exists()


def test_out_dir_needs_force_and_keeps_foreign_files(tmp_path):
    out = tmp_path / "set"
    build_util.prepare_out_dir(out, force=False)
    (out / "train").mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(WavecraftError, match="--force"):
        build_util.prepare_out_dir(out, force=False)
    build_util.prepare_out_dir(out, force=True)
    assert not (out / "train").exists() and (out / "notes.txt").read_text() == "mine"


def test_missing_source_names_the_install_command(monkeypatch):
    fake = sources.Source("fluidr3_gm", "soundfont", "fluid-soundfont-gm", "apt", "MIT", ("/nonexistent/x.sf2",))
    monkeypatch.setitem(sources.SOURCES, "fluidr3_gm", fake)
    with pytest.raises(sources.SourceMissingError, match=r"apt-get install -y fluid-soundfont-gm"):
        sources.require_all(["fluidr3_gm"])
    with pytest.raises(WavecraftError, match="unknown data source 'nope'"):
        sources.get_source("nope")
    assert "--no-deps" in sources.get_source("tinysoundfont").install_command
    assert sources.get_source("/x/My Font.sf2").name == "My Font"
