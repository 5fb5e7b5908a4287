"""`wavecraft data index` and `wavecraft data tokens` from the command line."""
import json

import numpy as np
import soundfile

from wavecraft.cli import main
from wavecraft.data.manifest import read_manifest


def test_index_writes_manifest_and_counts_skips(tmp_path, capsys):
    audio = tmp_path / "audio"
    (audio / "a").mkdir(parents=True)
    soundfile.write(str(audio / "a" / "x.wav"), np.zeros(8000, np.float32), 8000)
    soundfile.write(str(audio / "y.flac"), np.zeros((4000, 2), np.float32), 16000)
    (audio / "z.wav").write_bytes(b"nope")
    out = tmp_path / "data.jsonl"
    assert main(["data", "index", str(audio), "-o", str(out), "--relative", "--no-progress"]) == 0
    text = capsys.readouterr()
    assert "2 files" in text.out and "skipped 1 unreadable" in text.out and "z.wav" in text.err
    assert [json.loads(line)["path"] for line in out.read_text().splitlines()] == ["audio/a/x.wav", "audio/y.flac"]
    assert [m.duration for m in read_manifest(out)] == [1.0, 0.25]
    assert main(["data", "index", str(audio), "-o", str(out), "--no-progress"]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["data", "index", str(tmp_path / "missing"), "-o", str(tmp_path / "m.jsonl")]) == 2


def test_data_without_subcommand_shows_help(capsys):
    assert main(["data"]) == 2
    assert "index" in capsys.readouterr().out


def test_merge_joins_manifests_with_paths_relative_to_the_new_one(tmp_path, capsys):
    for name, seconds in (("music", 1.0), ("sounds", 0.5)):
        folder = tmp_path / name / "train"
        (folder / "audio").mkdir(parents=True)
        soundfile.write(str(folder / "audio" / "a.wav"), np.zeros(int(8000 * seconds), np.float32), 8000)
        (folder / "data.jsonl").write_text(json.dumps({"path": "audio/a.wav", "duration": seconds,
                                                       "sample_rate": 8000}) + "\n")
    out = tmp_path / "all.jsonl"
    assert main(["data", "merge", str(tmp_path / "music" / "train"), str(tmp_path / "sounds" / "train" / "data.jsonl"),
                 "-o", str(out)]) == 0
    assert "2 files" in capsys.readouterr().out
    assert [json.loads(line)["path"] for line in out.read_text().splitlines()] == [
        "music/train/audio/a.wav", "sounds/train/audio/a.wav"]
    assert [m.duration for m in read_manifest(out)] == [1.0, 0.5]
    assert main(["data", "merge", str(tmp_path / "music" / "train"), "-o", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert len(out.read_text().splitlines()) == 2  # untouched
    assert main(["data", "merge", str(tmp_path / "nothing"), "-o", str(tmp_path / "x.jsonl")]) == 2
    assert "manifest not found" in capsys.readouterr().err and not (tmp_path / "x.jsonl").exists()
