"""Every shipped recipe parses into its config (typos in recipes are errors, not silent defaults)."""
from pathlib import Path

import pytest

from wavecraft.errors import ConfigError
from wavecraft.train.config import CodecTrainConfig, LMTrainConfig, load_recipe

RECIPES = sorted(Path("recipes").glob("*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_recipe_parses(path):
    text = path.read_text()
    if "cfg_dropout:" in text:  # LM recipes name their condition dropout; codec recipes do not
        cfg = load_recipe(LMTrainConfig, str(path), ["codec=somewhere"] if "init_from:" not in text else [])
        assert 0 <= cfg.cfg_dropout <= 1
        if cfg.model is not None:
            assert cfg.model.lm.card >= 64
    else:
        cfg = load_recipe(CodecTrainConfig, str(path))
        assert cfg.data.sample_rate == cfg.model.sample_rate


def test_reference_shapes():
    codec = load_recipe(CodecTrainConfig, "recipes/encodec_32khz.yaml").model
    assert (codec.hop_length, codec.frame_rate, codec.n_q, codec.bins) == (640, 50.0, 4, 2048)
    lm = load_recipe(LMTrainConfig, "recipes/musicgen_small.yaml", ["codec=x"])
    assert (lm.model.lm.dim, lm.model.lm.num_layers, lm.optim.betas, lm.optim.weight_decay) == (1024, 24, (0.9, 0.95), 0.1)


def test_recipe_errors(tmp_path):
    with pytest.raises(ConfigError, match="recipe not found"):
        load_recipe(CodecTrainConfig, str(tmp_path / "none.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  lr: 1\n  betaz: [0.1, 0.2]\n")
    with pytest.raises(ConfigError, match="unknown key\\(s\\) \\['betaz'\\]"):
        load_recipe(CodecTrainConfig, str(bad))
    with pytest.raises(ConfigError, match="override 'run.steps' must look like key=value"):
        load_recipe(CodecTrainConfig, "recipes/tiny_codec.yaml", ["run.steps"])
    with pytest.raises(ConfigError, match="schedule must be one of"):
        load_recipe(CodecTrainConfig, "recipes/tiny_codec.yaml", ["optim.schedule=linear"])
