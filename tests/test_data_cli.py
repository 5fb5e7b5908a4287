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
