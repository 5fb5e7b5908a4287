"""The sound builder end to end without any Debian package: synthesis, scenes, splits, CLI errors."""
import json
import shutil

import pytest
import soundfile

from wavecraft.cli import main
from wavecraft.data.build_sounds import SoundBuildConfig, build_sounds, plan_sounds
from wavecraft.data.manifest import load_info, read_manifest
from wavecraft.data.synth_sounds import GENERATORS

SR = 16000


def _cfg(out, **kw):
    base = dict(out_dir=str(out), sources=(), synth_per_class=2, speech=0, mixes=12, sample_rate=SR,
                clip_seconds=4.0, workers=1, progress=False)
    base.update(kw)
    return SoundBuildConfig(**base)


def test_synth_only_build_writes_split_manifests_scenes_and_prompts(tmp_path):
    out = tmp_path / "sounds"
    summary = build_sounds(_cfg(out))
    assert summary["by_source"]["synth"] == 2 * len(GENERATORS) and not summary["failures"]
    infos = []
    for split in ("train", "valid", "eval"):
        if (out / split / "data.jsonl").exists():
            for meta in read_manifest(out / split / "data.jsonl"):
                info = load_info(meta)
                assert info["split"] == split and meta.duration <= 4.0 + 1e-6 and meta.sample_rate == SR
                assert soundfile.info(meta.path).samplerate == SR
                infos.append(info)
    mixes = [i for i in infos if i["source"] == "mix"]
    assert mixes, "no scenes were mixed"
    for m in mixes:
        fg = next(i for i in infos if i["id"] == m["foreground"])
        bg = next(i for i in infos if i["id"] == m["background"])
        assert fg["split"] == bg["split"] == m["split"]  # scenes never cross splits
        assert m["description"].startswith(fg["description"]) and m["sound_class"] == fg["sound_class"]
    prompts = [json.loads(line) for line in (out / "eval" / "prompts.jsonl").read_text().splitlines()]
    assert {p["id"] for p in prompts} == {i["id"] for i in infos if i["split"] == "eval"}


def test_limit_takes_a_seeded_subset(tmp_path):
    full = plan_sounds(_cfg(tmp_path))
    some = plan_sounds(_cfg(tmp_path, limit=10))
    again = plan_sounds(_cfg(tmp_path, limit=10))
    assert len(some) == 10 and [j.index for j in some] == [j.index for j in again]
    assert {j.index for j in some} <= {j.index for j in full}


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_speech_clips(tmp_path):
    out = tmp_path / "speech"
    build_sounds(_cfg(out, synth_per_class=0, speech=3, mixes=0, clip_seconds=8.0))
    metas = [m for s in ("train", "valid", "eval") if (out / s / "data.jsonl").exists()
             for m in read_manifest(out / s / "data.jsonl")]
    assert len(metas) >= 3
    info = load_info(metas[0])
    assert info["sound_class"] == "speech" and "synthesized" in info["description"] and info["text"]


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["data", "build-sounds", str(tmp_path / "x"), "--sources", "nosuch"]) == 2
    assert "unknown data source 'nosuch'" in capsys.readouterr().err
    assert main(["data", "build-sounds", str(tmp_path / "x"), "--sources", "", "--synth-per-class", "0",
                 "--speech", "0"]) == 2
    assert "nothing to build" in capsys.readouterr().err
    assert main(["data", "build-music", str(tmp_path / "m"), "--generated-fraction", "2"]) == 2
    assert "generated_fraction" in capsys.readouterr().err
