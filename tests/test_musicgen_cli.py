"""`wavecraft generate` end to end from randomly initialised checkpoints (HF and native formats)."""
import subprocess
import sys

import pytest
import soundfile as sf
import torch

from wavecraft.cli import main
from wavecraft.models.musicgen import MusicGen
from wavecraft.models.tiny import tiny_hf_musicgen

BASE = ["-d", "0.2", "-s", "7", "--normalize", "peak"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    tiny_hf_musicgen(root / "hf")
    MusicGen.get_pretrained(root / "hf", device="cpu").save_pretrained(root / "native")
    return root


def run(*args):
    return main(["generate", *map(str, args)])


def test_generates_a_file_from_hf_and_native_checkpoints(folders, tmp_path, capsys):
    assert run("lofi beat with warm piano", "-m", folders / "hf", "-o", tmp_path / "hf.wav", *BASE) == 0
    err = capsys.readouterr().err
    assert "generating" in err and "step" in err  # the progress bar
    assert run("lofi beat with warm piano", "-m", folders / "native", "-o", tmp_path / "native.wav", *BASE, "-q") == 0
    a, sr = sf.read(tmp_path / "hf.wav")
    b, _ = sf.read(tmp_path / "native.wav")
    assert sr == 400 and a.shape == (80,)
    assert (a == b).all() and abs(a).max() > 0  # same model, same seed: the same file


def test_refuses_to_overwrite_without_force(folders, tmp_path, capsys):
    out = tmp_path / "x.wav"
    out.write_bytes(b"keep me")
    assert run("calm pad", "-m", folders / "hf", "-o", out, *BASE) == 2
    assert "already exist" in capsys.readouterr().err and out.read_bytes() == b"keep me"
    assert run("calm pad", "-m", folders / "hf", "-o", out, *BASE, "--force", "-q") == 0
    assert sf.info(str(out)).frames == 80


def test_batch_file_and_continuation(folders, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("lofi beat\n\n  rock drums  \n")
    assert run("--batch", prompts, "-m", folders / "hf", "-o", tmp_path / "b.flac", *BASE, "-q") == 0
    assert sorted(p.name for p in tmp_path.glob("b_*.flac")) == ["b_0.flac", "b_1.flac"]
    clip = tmp_path / "clip.wav"
    sf.write(clip, 0.1 * torch.randn(40).numpy(), 400)  # 0.1 s to continue up to 0.2 s
    assert run("more of it", "--continue", clip, "-m", folders / "hf", "-o", tmp_path / "c.wav", *BASE, "-q") == 0
    assert sf.info(str(tmp_path / "c.wav")).frames == 80


def test_without_a_bundled_model_generate_asks_for_one(tmp_path, capsys, monkeypatch):
    import wavecraft.models.registry as registry

    monkeypatch.setattr(registry, "DEFAULT_MODEL", None)
    assert run("hi", "-o", tmp_path / "o.wav") == 2
    assert "pass --model" in capsys.readouterr().err and not (tmp_path / "o.wav").exists()


@pytest.mark.parametrize("args, message", [
    (["", "-m", "X"], "the prompt is empty"),
    (["hi", "-m", "X", "-d", "0"], "--duration must be > 0"),
    (["hi", "-m", "X", "-d", "-3"], "--duration must be > 0"),
    (["hi", "-m", "X", "--melody", "MISSING.wav"], "MISSING.wav"),
    (["hi", "-m", "NOPE/NOPE", "-o", "OUT.wav"], "not in the Hugging Face cache"),
    (["hi", "-m", "HF", "--melody", "MELODY", "-o", "OUT.wav", "--normalize", "peak"], "no melody"),
    (["hi", "-m", "HF", "-o", "OUT.xyz"], "unknown audio extension"),
    (["hi", "-m", "HF", "--top-p", "2", "-o", "OUT.wav"], "top_p must be in [0, 1]"),
])
def test_bad_input_is_one_clear_line(folders, tmp_path, capsys, args, message):
    melody = tmp_path / "melody.wav"
    sf.write(melody, torch.zeros(400).numpy(), 400)
    subst = {"HF": str(folders / "hf"), "MELODY": str(melody), "OUT.wav": str(tmp_path / "o.wav"),
             "OUT.xyz": str(tmp_path / "o.xyz"), "MISSING.wav": str(tmp_path / "MISSING.wav")}
    assert run(*[subst.get(a, a) for a in args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1
    assert not (tmp_path / "o.wav").exists()


def test_help_documents_every_option():
    out = subprocess.run([sys.executable, "-m", "wavecraft", "generate", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for flag in ("--model", "--duration", "--seed", "--top-k", "--top-p", "--temperature", "--cfg", "--melody",
                 "--continue", "--batch", "--force"):
        assert flag in out.stdout
