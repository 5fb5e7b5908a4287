"""ConditionTensors helpers, the fuser's exact layout, audiocraft fuse-map conversion, LUT conditioner."""
import pytest
import torch

from wavecraft.conditioners import (
    ConditionFuser,
    ConditionTensors,
    FuserConfig,
    LUTConditioner,
    LUTConditionerConfig,
    build_vocab,
    fuse_map_from_audiocraft,
)
from wavecraft.errors import ConfigError


def cond(values: list[list[float]], mask: list[list[bool]], dim: int = 2) -> ConditionTensors:
    """Rows of scalars -> [B, S, dim] embeddings whose every feature equals the scalar."""
    emb = torch.tensor(values, dtype=torch.float32)[..., None].repeat(1, 1, dim)
    return ConditionTensors(emb, torch.tensor(mask))


def test_pad_to_and_cat_for_cfg_batches():
    a = cond([[1, 2]], [[True, True]])
    padded = a.pad_to(4)
    assert padded.embeddings[0, :, 0].tolist() == [1, 2, 0, 0]
    assert padded.mask.tolist() == [[True, True, False, False]]
    both = padded.cat(padded.repeat_null())
    assert both.batch_size == 2 and not both.mask[1].any() and both.embeddings[1].abs().sum() == 0
    with pytest.raises(ValueError):
        a.pad_to(1)


def test_fuser_exact_layout_follows_fuse_map_order():
    fuser = ConditionFuser({"melody": "prepend", "description": "cross", "genre": "prepend", "mood": "cross"})
    conditions = {  # deliberately given in another order than the map
        "mood": cond([[7], [8]], [[True], [False]]),
        "genre": cond([[5], [6]], [[True], [True]]),
        "description": cond([[1, 2, 3], [4, 0, 0]], [[True, True, True], [True, False, False]]),
        "melody": cond([[9, 9], [10, 10]], [[True, True], [True, True]]),
    }
    out = fuser(conditions)
    assert out.prefix.embeddings[..., 0].tolist() == [[9, 9, 5], [10, 10, 6]]
    assert out.prefix.mask.tolist() == [[True, True, True], [True, True, True]]
    assert out.prefix_length == 3
    assert out.cross.embeddings[..., 0].tolist() == [[1, 2, 3, 7], [4, 0, 0, 8]]
    assert out.cross.mask.tolist() == [[True, True, True, True], [True, False, False, False]]
    assert out.sum is None


def test_fuser_sum_masks_and_broadcasts():
    fuser = ConditionFuser({"genre": "sum", "bpm": "sum"})
    genre = cond([[1.0], [2.0]], [[True], [False]])  # row 1 null: must not contribute
    bpm = cond([[10.0, 20.0, 30.0], [40.0, 50.0, 60.0]], [[True] * 3, [True] * 3])
    out = fuser({"genre": genre, "bpm": bpm})
    assert out.prefix is None and out.cross is None
    assert out.sum[..., 0].tolist() == [[11, 21, 31], [40, 50, 60]]


def test_fuser_rejects_unknown_attribute_and_mismatched_batches():
    fuser = ConditionFuser({"description": "cross"})
    with pytest.raises(ConfigError, match=r"\['genre'\] have no fuse method"):
        fuser({"genre": cond([[1]], [[True]])})
    fuser = ConditionFuser({"a": "cross", "b": "cross"})
    with pytest.raises(ValueError, match="'b' is"):
        fuser({"a": cond([[1]], [[True]]), "b": cond([[1], [2]], [[True], [True]])})
    with pytest.raises(ConfigError, match="must be one of"):
        FuserConfig(fuse={"a": "concat"})
    assert fuser({}).prefix is None


def test_fuse_map_from_audiocraft_melody_puts_chroma_first():
    # MusicGen-melody: audiocraft computes description, then self_wav, each prepended in front.
    cfg = {"cross_attention_pos_emb": False, "sum": [], "prepend": ["self_wav", "description"], "cross": [],
           "input_interpolate": []}
    fmap = fuse_map_from_audiocraft(cfg, ["description", "self_wav"])
    assert list(fmap.items()) == [("self_wav", "prepend"), ("description", "prepend")]
    plain = fuse_map_from_audiocraft({"cross": ["description"], "prepend": [], "sum": []}, ["description"])
    assert plain == {"description": "cross"}
    with pytest.raises(ConfigError, match="cross_attention_pos_emb"):
        fuse_map_from_audiocraft({"cross_attention_pos_emb": True}, [])


def test_build_vocab_is_frequency_ranked_and_normalised():
    values = ["Rock", "jazz", " rock ", None, "", ["Pop", "rock"], "Jazz", "ambient"]
    assert build_vocab(values) == ["rock", "jazz", "ambient", "pop"]
    assert build_vocab(values, min_count=2) == ["rock", "jazz"]
    assert build_vocab(values, max_size=1) == ["rock"]


def test_lut_conditioner_lookup_nulls_and_config_round_trip():
    torch.manual_seed(0)
    config = LUTConditionerConfig(vocab=["rock", "jazz", "pop"], dim=4, output_dim=6)
    lut = LUTConditioner(config)
    out = lut.condition(["Jazz", None, "polka", ["rock", "unknown", "pop"]])
    # Unknown values inside a list are dropped, so row 3 holds [rock, pop].
    assert out.embeddings.shape == (4, 2, 6)
    assert out.mask.tolist() == [[True, False], [False, False], [False, False], [True, True]]
    expected = lut.output_proj(lut.embed.weight)  # [3, 6]: projected row per vocab entry
    torch.testing.assert_close(out.embeddings[0, 0], expected[1])
    torch.testing.assert_close(out.embeddings[3, :2], expected[[0, 2]])
    assert out.embeddings[1].abs().sum() == 0 and out.embeddings[2].abs().sum() == 0
    assert out.embeddings[0, 1:].abs().sum() == 0  # padding positions are zero too
    again = LUTConditionerConfig.from_json(config.to_json())
    assert again == config
    with pytest.raises(ConfigError, match="vocab is empty"):
        LUTConditionerConfig(vocab=[])
    with pytest.raises(ConfigError, match="distinct"):
        LUTConditionerConfig(vocab=["Rock", "rock"])


def test_lut_state_dict_and_device_handling():
    lut = LUTConditioner(LUTConditionerConfig(vocab=["a", "b"], dim=3, output_dim=5))
    assert sorted(lut.state_dict()) == ["embed.weight", "output_proj.bias", "output_proj.weight"]
    half = lut.to(torch.float64)
    out = half.condition(["a"])
    assert out.embeddings.dtype == torch.float64 and half.device == torch.device("cpu")
