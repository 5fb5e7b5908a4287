import gzip
import json

import numpy as np
import pytest
import soundfile

from wavecraft.data.manifest import (AudioMeta, ManifestError, index_directory, load_info, read_manifest,
                                     write_manifest)


def _wav(path, seconds=0.5, sr=8000, channels=1):
    soundfile.write(str(path), np.zeros((int(seconds * sr), channels), np.float32), sr)


def test_read_audiocraft_manifest_with_optional_fields_and_gzip(tmp_path):
    lines = [
        {"path": "/abs/a.wav", "duration": 3.5, "sample_rate": 32000, "amplitude": None, "weight": 2.0,
         "info_path": None},
        {"path": "rel/b.flac", "duration": 10, "sample_rate": 44100},
    ]
    text = "".join(json.dumps(x) + "\n" for x in lines)
    (tmp_path / "data.jsonl.gz").write_bytes(gzip.compress(text.encode()))
    metas = read_manifest(tmp_path)  # a folder resolves to its data.jsonl[.gz]
    assert metas[0] == AudioMeta("/abs/a.wav", 3.5, 32000, None, 2.0, None)
    assert metas[1].path == str(tmp_path.resolve() / "rel/b.flac")  # relative to the manifest
    assert metas[1].duration == 10.0 and isinstance(metas[1].duration, float)


@pytest.mark.parametrize("line, message", [
    ('{"path": "a.wav", "duration": 1}', "missing field(s) ['sample_rate']"),
    ("not json", "not valid JSON"),
    ('{"path": "a.wav", "duration": "x", "sample_rate": 8000}', "bad value"),
    ('{"path": "a.wav", "duration": 1, "sample_rate": 0}', "sample_rate > 0"),
])
def test_bad_manifest_lines_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "m.jsonl"
    path.write_text('{"path": "ok.wav", "duration": 1, "sample_rate": 8000}\n' + line + "\n")
    with pytest.raises(ManifestError) as err:
        read_manifest(path)
    assert f"{path}:2" in str(err.value) and message in str(err.value)


def test_missing_and_empty_manifest(tmp_path):
    with pytest.raises(ManifestError, match="wavecraft data index"):
        read_manifest(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(ManifestError, match="lists no audio files"):
        read_manifest(tmp_path / "empty.jsonl")


def test_write_roundtrip_relative_and_no_silent_overwrite(tmp_path):
    metas = [AudioMeta(str(tmp_path / "x" / "a.wav"), 1.25, 16000, weight=0.5)]
    out = write_manifest(metas, tmp_path / "data.jsonl", relative=True)
    assert json.loads(out.read_text()) == {"path": "x/a.wav", "duration": 1.25, "sample_rate": 16000, "weight": 0.5}
    assert read_manifest(out) == metas
    with pytest.raises(ManifestError, match="already exists.*--force"):
        write_manifest(metas, out)
    write_manifest(metas + metas, out, force=True)
    assert len(read_manifest(out)) == 2


def test_index_directory_skips_unreadable_files(tmp_path):
    (tmp_path / "sub").mkdir()
    _wav(tmp_path / "a.wav", 0.5, 8000)
    _wav(tmp_path / "sub" / "b.flac", 0.25, 16000, channels=2)
    (tmp_path / "broken.wav").write_bytes(b"RIFF not really a wav")
    (tmp_path / "notes.txt").write_text("ignored")
    metas, skipped = index_directory(tmp_path, workers=2)
    assert [(m.duration, m.sample_rate) for m in metas] == [(0.5, 8000), (0.25, 16000)]
    assert [p for p, _ in skipped] == [str(tmp_path / "broken.wav")]


def test_sidecar_lookup(tmp_path):
    _wav(tmp_path / "song.wav")
    meta = AudioMeta(str(tmp_path / "song.wav"), 0.5, 8000)
    assert load_info(meta) is None
    (tmp_path / "song.json").write_text('{"description": "hi"}')
    assert load_info(meta) == {"description": "hi"}
    (tmp_path / "song.json").write_text("{broken")
    with pytest.raises(ManifestError, match="song.json is unreadable"):
        load_info(meta)
