"""T5 conditioner against transformers: the plain encoder, HF MusicGen and MusicGen-melody wiring.

Everything is tiny and random; the tokenizer is a sentencepiece model trained in the test, so
nothing is downloaded.
"""
import pytest
import torch

from wavecraft.conditioners import (
    ChromaConditioner,
    ChromaConditionerConfig,
    ChromaExtractor,
    ConditionFuser,
    T5Conditioner,
    T5ConditionerConfig,
    load_t5,
)
from wavecraft.errors import CheckpointError

PROMPTS = ["calm piano melody with soft strings", None, "rock", ""]
CORPUS = [
    "a calm piano melody with soft strings", "an energetic rock song with drums", "lofi hip hop beat with warm bass",
    "ambient pad with birds and rain", "fast techno with heavy kick", "sad violin solo in a minor key",
] * 10


@pytest.fixture(scope="module")
def spm_file(tmp_path_factory):
    import sentencepiece as spm

    prefix = tmp_path_factory.mktemp("spm") / "spiece"
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS), model_prefix=str(prefix), vocab_size=45, model_type="unigram",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, minloglevel=2,
    )
    return prefix.with_suffix(".model")


@pytest.fixture(scope="module")
def tokenizer(spm_file):
    import sentencepiece as spm
    from transformers import T5Tokenizer

    sp = spm.SentencePieceProcessor(model_file=str(spm_file))
    return T5Tokenizer(vocab=[(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())], extra_ids=0)


def tiny_t5(d_model: int = 24, seed: int = 0):
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    cfg = T5Config(vocab_size=64, d_model=d_model, d_kv=6, num_heads=4, num_layers=2, d_ff=48, dropout_rate=0.0)
    return T5EncoderModel(cfg).eval()


def test_matches_transformers_encoder_then_projection_then_mask(tokenizer):
    encoder = tiny_t5()
    cond = T5Conditioner(T5ConditionerConfig(output_dim=16), encoder, tokenizer)
    out = cond.condition(PROMPTS)
    enc = tokenizer(["" if not p else p for p in PROMPTS], return_tensors="pt", padding=True)
    with torch.no_grad():
        hidden = encoder(**enc).last_hidden_state
        ref = cond.output_proj(hidden) * enc["attention_mask"][..., None]
    null = torch.tensor([False, True, False, True])
    assert out.mask.tolist() == (enc["attention_mask"].bool() & ~null[:, None]).tolist()
    torch.testing.assert_close(out.embeddings[~null], ref[~null], rtol=1e-5, atol=1e-6)
    assert out.embeddings[null].abs().sum() == 0  # None and "" are the null condition
    assert out.embeddings.shape == (4, enc["input_ids"].shape[1], 16)


def test_encoder_is_frozen_and_out_of_the_state_dict(tokenizer):
    cond = T5Conditioner(T5ConditionerConfig(output_dim=16), tiny_t5(), tokenizer)
    assert sorted(cond.state_dict()) == ["output_proj.bias", "output_proj.weight"]
    assert all(not p.requires_grad for p in cond.encoder.parameters())
    cond.train()
    assert not cond.encoder.training
    cond.to(torch.float64)
    assert next(cond.encoder.parameters()).dtype == torch.float64  # moved along with the projection
    assert cond.condition(["rock"]).embeddings.dtype == torch.float64


def test_word_dropout_only_while_training(tokenizer):
    cond = T5Conditioner(T5ConditionerConfig(output_dim=16, word_dropout=1.0), tiny_t5(), tokenizer)
    cond.eval()
    kept = cond.tokenize(["calm piano melody"])
    cond.train()
    dropped = cond.tokenize(["calm piano melody"])
    assert kept["input_ids"].shape[1] > 1
    assert dropped["input_ids"].tolist() == [[1]]  # every word dropped: only </s> is left
    assert dropped["mask"].tolist() == [[False]]  # nothing left: the null condition, as audiocraft


def test_project_false_is_identity_and_checks_widths(tokenizer):
    cond = T5Conditioner(T5ConditionerConfig(output_dim=24, project=False), tiny_t5(), tokenizer)
    assert cond.state_dict() == {}
    with pytest.raises(Exception, match="project=False needs the encoder width"):
        T5Conditioner(T5ConditionerConfig(output_dim=16, project=False), tiny_t5(), tokenizer)


def tiny_musicgen(melody: bool, tokenizer_width: int = 24):
    from transformers import EncodecConfig, T5Config

    enc_cfg = EncodecConfig(
        hidden_size=8, num_filters=4, num_residual_layers=1, upsampling_ratios=[2, 2], codebook_size=16,
        codebook_dim=8, audio_channels=1, sampling_rate=32000, num_lstm_layers=1,
    )
    t5_cfg = T5Config(vocab_size=64, d_model=tokenizer_width, d_kv=6, num_heads=4, num_layers=2, d_ff=48)
    torch.manual_seed(0)
    if melody:
        from transformers import (
            MusicgenMelodyConfig,
            MusicgenMelodyDecoderConfig,
            MusicgenMelodyForConditionalGeneration,
        )

        dec = MusicgenMelodyDecoderConfig(
            vocab_size=16, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, ffn_dim=32, num_codebooks=2
        )
        cfg = MusicgenMelodyConfig(text_encoder=t5_cfg, audio_encoder=enc_cfg, decoder=dec, chroma_length=10)
        return MusicgenMelodyForConditionalGeneration(cfg).eval()
    from transformers import MusicgenConfig, MusicgenDecoderConfig, MusicgenForConditionalGeneration

    dec = MusicgenDecoderConfig(
        vocab_size=16, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, ffn_dim=32, num_codebooks=2
    )
    cfg = MusicgenConfig(text_encoder=t5_cfg, audio_encoder=enc_cfg, decoder=dec)
    return MusicgenForConditionalGeneration(cfg).eval()


def capture_decoder_inputs(model, **inputs) -> dict:
    seen = {}

    def hook(_module, _args, kwargs):
        seen.update(kwargs)

    handle = model.decoder.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        with torch.no_grad():
            model(**inputs, decoder_input_ids=torch.zeros(2 * 2, 1, dtype=torch.long))
    finally:
        handle.remove()
    return seen


def test_same_condition_as_hf_musicgen(tokenizer):
    model = tiny_musicgen(melody=False)
    texts = ["calm piano melody with soft strings", "rock"]
    enc = tokenizer(texts, return_tensors="pt", padding=True)
    seen = capture_decoder_inputs(model, input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
    cond = T5Conditioner.from_modules(model.text_encoder, tokenizer, model.enc_to_dec_proj).condition(texts)
    torch.testing.assert_close(cond.embeddings, seen["encoder_hidden_states"], rtol=1e-5, atol=1e-6)
    assert cond.mask.tolist() == seen["encoder_attention_mask"].bool().tolist()


def test_same_prefix_as_hf_musicgen_melody(tokenizer):
    model = tiny_musicgen(melody=True)
    texts = ["sad violin solo", "fast techno with heavy kick"]
    t = torch.arange(int(0.5 * 32000)) / 32000
    melodies = [torch.sin(2 * torch.pi * 440 * t), torch.sin(2 * torch.pi * 261.63 * t)]
    features = ChromaExtractor()(torch.stack(melodies))  # what MusicgenMelodyFeatureExtractor gives
    enc = tokenizer(texts, return_tensors="pt", padding=True)
    seen = capture_decoder_inputs(
        model, input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], input_features=features
    )
    text = T5Conditioner.from_modules(model.text_encoder, tokenizer, model.enc_to_dec_proj)
    chroma = ChromaConditioner(ChromaConditionerConfig(output_dim=16, length=model.config.chroma_length))
    chroma.output_proj.load_state_dict(model.audio_enc_to_dec_proj.state_dict())
    fused = ConditionFuser({"self_wav": "prepend", "description": "prepend"})(
        {"description": text.condition(texts), "self_wav": chroma.condition(melodies)}
    )
    torch.testing.assert_close(fused.prefix.embeddings, seen["encoder_hidden_states"], rtol=1e-5, atol=1e-6)


def test_loads_from_folder_and_hf_cache_layout(tmp_path, tokenizer):
    folder = tmp_path / "my-t5"
    tiny_t5().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    cond = T5Conditioner(T5ConditionerConfig(name=str(folder), output_dim=8))
    assert cond.dim == 24 and cond.condition(["rock"]).embeddings.shape[-1] == 8
    # The hub cache layout, under the new spelling of t5-base's repository.
    snapshot = tmp_path / "cache" / "models--google-t5--t5-base" / "snapshots" / "0123abc"
    tiny_t5().save_pretrained(snapshot)
    tokenizer.save_pretrained(snapshot)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("0123abc")
    encoder, tok = load_t5("t5-base", cache_dir=tmp_path / "cache")
    assert encoder.config.d_model == 24 and tok("rock").input_ids[-1] == 1


def test_spiece_only_folder_uses_sentencepiece_fallback(tmp_path, spm_file, tokenizer):
    folder = tmp_path / "t5-v1_1-like"
    tiny_t5().save_pretrained(folder)
    (folder / "spiece.model").write_bytes(spm_file.read_bytes())
    _, tok = load_t5(str(folder))
    assert tok(["calm piano", "rock"]).input_ids == tokenizer(["calm piano", "rock"]).input_ids


def test_missing_t5_is_a_checkpoint_error_saying_what_to_download(tmp_path):
    with pytest.raises(CheckpointError, match=r"'t5-large' is not available offline.*hf download google-t5/t5-large"):
        load_t5("t5-large", cache_dir=tmp_path)
    with pytest.raises(CheckpointError, match="T5 text encoder folder not found"):
        load_t5(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="does not hold a T5 encoder"):
        load_t5(str(tmp_path / "empty"))
