"""`wavecraft eval` and the evaluation functions on a toy manifest with tiny untrained models."""
import json
import math

import pytest
import torch

from wavecraft.cli import main
from wavecraft.metrics.evaluate import evaluate_codec, evaluate_lm, evaluate_melody
from wavecraft.train.toydata import make_toy_dataset


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    from wavecraft.audio import audio_read
    from wavecraft.codec import Codec, CodecConfig
    from wavecraft.conditioners import LUTConditioner, LUTConditionerConfig
    from wavecraft.lm import LMConfig, LMModel
    from wavecraft.models.loaders.native import save_codec
    from wavecraft.models.musicgen import MusicGen, MusicGenConfig

    root = tmp_path_factory.mktemp("eval")
    manifest = make_toy_dataset(root / "toy", n_files=3, sample_rate=8000, duration=0.5)
    torch.manual_seed(0)
    codec = Codec(CodecConfig.preset("tiny"), name="tiny").train()
    codec(audio_read(manifest.parent / "chord_001.wav")[0][None])  # k-means initialises the codebooks
    save_codec(codec.eval(), root / "codec")
    lm_cfg = LMConfig(n_q=4, card=64, dim=16, num_heads=2, num_layers=1, ffn_dim=32)
    genre = LUTConditioner(LUTConditionerConfig(vocab=["ambient", "electronic"], dim=4, output_dim=16))
    config = MusicGenConfig(lm=lm_cfg, conditioners={}, fuse={"genre": "cross"}, max_duration=0.5)
    MusicGen("tiny", config, LMModel(lm_cfg), codec, {"genre": genre}).save_pretrained(root / "model")
    return manifest, root


def test_eval_codec_cli_and_skips_bad_files(assets, tmp_path):
    manifest, root = assets
    out = tmp_path / "codec.json"
    assert main(["eval", "codec", str(root / "codec"), str(manifest), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result) == {"si_snr", "mel_distance", "stft_distance", "files", "skipped"}
    assert result["files"] == 3 and result["skipped"] == 0 and result["mel_distance"] > 0
    assert main(["eval", "codec", str(root / "codec"), str(manifest), "--json", str(out)]) == 2  # no overwrite
    bad = tmp_path / "bad.jsonl"
    bad.write_text(manifest.read_text().replace("sine_000.wav", "missing.wav").replace('"path": "', f'"path": "{manifest.parent}/'))
    from wavecraft.codec import load_codec

    assert evaluate_codec(load_codec(str(root / "codec")), str(bad))["skipped"] == 1


def test_eval_lm_reports_per_codebook_perplexity(assets, capsys):
    manifest, root = assets
    assert main(["eval", "lm", str(root / "model"), str(manifest), "--max-files", "2", "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "ppl_q3" in text and "files" in text
    from wavecraft.models.musicgen import MusicGen

    result = evaluate_lm(MusicGen.get_pretrained(str(root / "model"), device="cpu"), str(manifest))
    assert result["ce"] == pytest.approx(math.log(64), abs=1.0)  # an untrained LM is near uniform
    assert result["ppl_q0"] == pytest.approx(math.exp(result["ce_q0"]))


def test_eval_melody_needs_melody_model_and_scores_chroma(assets):
    manifest, root = assets
    from wavecraft.errors import ConfigError
    from wavecraft.models.musicgen import MusicGen

    with pytest.raises(ConfigError, match="no melody conditioner"):
        evaluate_melody(MusicGen.get_pretrained(str(root / "model"), device="cpu"), str(manifest))

    class Echo:  # a "model" that returns its melody: similarity must be ~1
        name, supports_melody, sample_rate = "echo", True, 8000

        def set_generation_params(self, **kwargs):
            self.params = kwargs

        def generate_with_chroma(self, descriptions, melody, sample_rate):
            return melody

        def generate(self, descriptions):  # without a melody: a tone unrelated to it
            t = torch.arange(4000) / 8000
            return torch.sin(2 * torch.pi * 277.2 * t)[None, None]

    result = evaluate_melody(Echo(), str(manifest), duration=0.5)
    assert result["chroma_cosine"] > 0.99 and result["files"] == 3
    assert result["chroma_cosine_text_only"] < 0.9
