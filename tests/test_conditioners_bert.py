"""Our BERT encoder and word-piece tokenizer against transformers' on the packaged MiniLM files."""
import json

import pytest
import torch

from wavecraft.conditioners.bert import BertConfig, BertEncoder, WordPieceTokenizer
from wavecraft.conditioners.minilm import minilm_folder
from wavecraft.errors import CheckpointError

TEXTS = [
    "lofi beat with warm piano",
    "",
    "Funk at 112 BPM, with slap bass, electric piano and drums.",
    "Ça sonne très bien — café, naïve, 東京, emoji 🎹 and odd   spacing\tand\nnewlines",
    "a very long prompt " * 60,  # truncated
]


@pytest.fixture(scope="module")
def both():
    from transformers import AutoModel, AutoTokenizer

    folder = minilm_folder()
    return (BertEncoder.from_folder(folder), WordPieceTokenizer(folder / "tokenizer.json"),
            AutoModel.from_pretrained(str(folder), local_files_only=True).eval(),
            AutoTokenizer.from_pretrained(str(folder), local_files_only=True))


def test_tokenizer_gives_transformers_ids(both):
    _, ours, _, theirs = both
    for max_length in (256, 16):
        a = ours(TEXTS, return_tensors="pt", padding=True, truncation=True, max_length=max_length)
        b = theirs(TEXTS, return_tensors="pt", padding=True, truncation=True, max_length=max_length)
        for key in ("input_ids", "attention_mask", "token_type_ids"):
            assert torch.equal(a[key], b[key]), key
    assert a["input_ids"].shape[1] == 16 and (a["input_ids"][:, 0] == 101).all()


def test_encoder_gives_transformers_hidden_states(both):
    encoder, tokenizer, reference, _ = both
    batch = tokenizer(TEXTS, truncation=True, max_length=64)
    with torch.no_grad():
        ours = encoder(**batch).last_hidden_state
        theirs = reference(**batch).last_hidden_state
    assert ours.shape == theirs.shape == (len(TEXTS), 64, 384)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=2e-5)  # padded positions included
    single = tokenizer(TEXTS[:1])
    with torch.no_grad():  # no padding: the unmasked path
        torch.testing.assert_close(encoder(**single).last_hidden_state, reference(**single).last_hidden_state,
                                   rtol=1e-5, atol=2e-5)


def test_bad_files_are_clear(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"hidden_act": "relu"}))
    with pytest.raises(CheckpointError, match="only BERT with exact GELU"):
        BertConfig.from_json(tmp_path / "config.json")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not a readable BERT config"):
        BertConfig.from_json(tmp_path / "config.json")
    cfg = json.loads((minilm_folder() / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "num_hidden_layers": 7}))
    (tmp_path / "model.safetensors").symlink_to(minilm_folder() / "model.safetensors")
    with pytest.raises(CheckpointError, match="does not hold a BERT of this shape"):
        BertEncoder.from_folder(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(CheckpointError, match="not a readable tokenizer"):
        WordPieceTokenizer(tmp_path / "tokenizer.json")


def test_a_folder_of_another_architecture_loads_through_transformers(tmp_path):
    """A MiniLM folder our encoder does not read (here: a BERT with GELU-new) still loads."""
    import shutil

    from transformers import BertConfig as HFBertConfig, BertModel

    from wavecraft.conditioners.minilm import load_minilm

    folder = tmp_path / "variant"
    torch.manual_seed(0)
    BertModel(HFBertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=64, hidden_act="gelu_new")).save_pretrained(str(folder))
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(minilm_folder() / name, folder / name)
    encoder, tokenizer = load_minilm(folder)
    assert type(encoder).__name__ == "BertModel"
    batch = tokenizer(["rock"], return_tensors="pt", padding=True)
    assert encoder(**batch).last_hidden_state.shape == (1, 3, 32)
    (folder / "model.safetensors").write_bytes(b"broken")
    with pytest.raises(CheckpointError, match="transformers could not load it either"):
        load_minilm(folder)
