"""The bundled generation models: `music` is the default of `wavecraft generate` / `demo`, `sound`
makes sound effects; both load offline from the package, follow their prompts' seeds exactly, and
the music model takes a melody and continues audio. Their measured adherence is in their cards."""
from pathlib import Path

import pytest
import torch

from wavecraft.cli import main
from wavecraft.models import registry

PACKAGE = Path(registry.__file__).resolve().parent / "bundled"


@pytest.fixture(scope="module")
def music():
    from wavecraft.models.loaders.auto import load_model

    return load_model("music")


def test_registry_and_cards():
    assert registry.DEFAULT_MODEL == "music" and registry.DEFAULT_CODEC == "codec"
    assert {"music", "sound", "codec"} <= set(registry.bundled_names())
    for name in ("music", "sound", "codec"):
        card = (registry.resolve_bundled(name) / "MODEL_CARD.md").read_text()
        assert "## Limitations" in card and "{" not in card  # every placeholder filled in
    total = sum(f.stat().st_size for f in PACKAGE.rglob("*") if f.is_file())
    assert total <= 150e6, f"bundled weights take {total / 1e6:.0f} MB (budget 150 MB)"


def test_music_model_is_seeded_and_prompts_change_the_music(music):
    music.set_generation_params(duration=1.0)
    a = music.generate(["Rock at 150 BPM, with electric guitar, bass and drums."], seed=3)
    again = music.generate(["Rock at 150 BPM, with electric guitar, bass and drums."], seed=3)
    other = music.generate(["A slow calm chorale for organ at 60 BPM."], seed=3)
    assert a.shape == (1, 1, 16000) and torch.isfinite(a).all() and a.abs().max() > 1e-3
    assert torch.equal(a, again)
    assert not torch.allclose(a, other, atol=1e-3)


def test_music_model_continues_audio_and_follows_a_melody(music):
    from wavecraft.audio import audio_read
    from wavecraft.cli.demo import SAMPLE

    prompt, sr = audio_read(SAMPLE, duration=1.0)
    music.set_generation_params(duration=2.0)
    wav, tokens = music.generate_continuation(prompt[None], sr, ["funk with slap bass"], seed=0, return_tokens=True)
    assert wav.shape == (1, 1, 32000)
    prompt_codes, _ = music.codec.encode(prompt[None])
    assert torch.equal(tokens[..., : prompt_codes.shape[-1]], prompt_codes)  # the prompt is kept as is
    assert music.supports_melody
    music.set_generation_params(duration=1.0)
    melodic = music.generate_with_chroma(["a piano piece"], prompt[None], sr, seed=0)
    plain = music.generate(["a piano piece"], seed=0)
    assert melodic.shape == plain.shape and not torch.allclose(melodic, plain, atol=1e-3)


def test_cli_generates_music_by_default_and_sound_on_request(tmp_path):
    import soundfile as sf

    assert main(["generate", "Funk at 112 BPM with slap bass", "-d", "1", "-o", str(tmp_path / "m.wav"), "-q"]) == 0
    assert main(["generate", "--model", "sound", "dog barking in the rain", "-d", "1",
                 "-o", str(tmp_path / "s.wav"), "-q"]) == 0
    for name in ("m.wav", "s.wav"):
        data, sr = sf.read(tmp_path / name)
        assert sr == 16000 and data.shape == (16000,) and abs(data).max() > 1e-3


def test_demo_generates_with_the_bundled_music_model(tmp_path, capsys):
    assert main(["demo", "--out-dir", str(tmp_path), "-d", "1"]) == 0
    assert "real time" in capsys.readouterr().out
    assert (tmp_path / "demo.wav").is_file()


def test_music_model_fast_paths_give_the_plain_tokens(music):
    """LeanStep against the plain decode step on the real bundled weights: the same prompt and seed
    give the same tokens, with text alone and with a melody prefix."""
    from wavecraft.audio import audio_read
    from wavecraft.cli.demo import SAMPLE

    melody, sr = audio_read(SAMPLE, duration=1.0)
    music.set_generation_params(duration=1.5)
    runs = []
    for lean in (True, False):
        music.lm.lean_decoding = lean
        _, tokens = music.generate(["Funk at 112 BPM, with slap bass."], seed=1, return_tokens=True)
        _, melodic = music.generate_with_chroma(["a piano piece"], melody[None], sr, seed=1, return_tokens=True)
        runs.append((tokens, melodic))
    music.lm.lean_decoding = True
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])


def test_sound_model_shares_the_music_codec_and_a_missing_codec_is_clear(tmp_path):
    import json
    import shutil
    import subprocess
    import sys

    from wavecraft.errors import CheckpointError
    from wavecraft.models.loaders.auto import load_model

    sound = registry.resolve_bundled("sound")
    assert not (sound / "codec").exists()  # one copy of the codec on disk, in music/codec
    assert load_model("sound").codec.sample_rate == 16000
    # A copy of the sound model whose codec reference leads nowhere:
    broken = tmp_path / "sound"
    shutil.copytree(sound, broken)
    with pytest.raises(CheckpointError, match="its codec folder '../music/codec' is missing"):
        load_model(str(broken))
    # The recipe step that makes the reference: identical codecs are shared, different ones refused.
    (tmp_path / "music").mkdir()
    shutil.copytree(registry.resolve_bundled("codec"), tmp_path / "music" / "codec")
    shutil.copytree(tmp_path / "music" / "codec", broken / "codec")
    config = json.loads((broken / "config.json").read_text())
    del config["extra"]["codec"]
    (broken / "config.json").write_text(json.dumps(config))
    script = Path(__file__).resolve().parents[1] / "recipes" / "bundled" / "share_codec.py"
    run = subprocess.run([sys.executable, str(script), str(broken), str(tmp_path / "music")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert not (broken / "codec").exists() and load_model(str(broken)).codec.sample_rate == 16000
    shutil.copytree(tmp_path / "music" / "codec", broken / "codec")
    (tmp_path / "music" / "codec" / "config.json").write_text("{}")
    run = subprocess.run([sys.executable, str(script), str(broken), str(tmp_path / "music")], capture_output=True, text=True)
    assert run.returncode != 0 and "do not share a codec" in run.stderr
