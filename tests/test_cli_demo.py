"""`wavecraft demo`: the main job with defaults; never replaces an existing file."""
import soundfile as sf

from wavecraft.cli import main
from wavecraft.models.musicgen import MusicGen
from wavecraft.models.tiny import tiny_hf_musicgen


def test_demo_writes_new_numbered_files_and_reports_speed(tmp_path, capsys):
    tiny_hf_musicgen(tmp_path / "hf")
    out = tmp_path / "out"
    args = ["demo", "a calm piano", "-m", str(tmp_path / "hf"), "--out-dir", str(out), "-d", "0.2", "--normalize", "peak"]
    assert main(args) == 0
    assert "real time" in capsys.readouterr().out
    assert main(args) == 0
    first, sr = sf.read(out / "demo.wav")
    second, _ = sf.read(out / "demo_1.wav")
    assert sr == MusicGen.get_pretrained(tmp_path / "hf", device="cpu").sample_rate
    assert first.shape == (80,) and (first == second).all()  # same default seed, same audio, new file


def test_demo_rejects_bad_input(tmp_path, capsys):
    assert main(["demo", "  ", "--out-dir", str(tmp_path)]) == 2
    assert "prompt is empty" in capsys.readouterr().err
    assert main(["demo", "-d", "0", "--out-dir", str(tmp_path)]) == 2
    assert "--duration must be > 0" in capsys.readouterr().err
    assert main(["demo", "-m", str(tmp_path / "missing"), "--out-dir", str(tmp_path)]) == 2
    assert "missing" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())



def test_demo_without_any_bundled_model_says_what_to_pass(tmp_path, capsys, monkeypatch):
    import wavecraft.models.registry as registry

    monkeypatch.setattr(registry, "DEFAULT_MODEL", None)
    monkeypatch.setattr(registry, "DEFAULT_CODEC", None)
    assert main(["demo", "--out-dir", str(tmp_path)]) == 2
    assert "pass --model" in capsys.readouterr().err
