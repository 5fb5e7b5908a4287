"""Parity with transformers' MusicGen, the correctness anchor.

Randomly initialised `MusicgenForConditionalGeneration` models (T5 + EnCodec + decoder, mono and
stereo, two shapes) and a `MusicgenMelodyForConditionalGeneration` are saved with
`save_pretrained` and loaded by our loader. Greedy generation with CFG (guidance 3) must give the
same tokens as `model.generate(..., do_sample=False, guidance_scale=3)`, every step's guided
logits must agree within 1e-4 relative error, and the decoded audio must match.
"""
import json

import pytest
import torch

from wavecraft.lm import GenerationParams, generate_codes
from wavecraft.models.musicgen import MusicGen
from wavecraft.models.tiny import tiny_hf_musicgen

TEXTS = ["lofi beat with warm piano", "dog barking"]  # different lengths: the second row is padded
FRAMES = 10  # 0.2 s at the tiny codec's 50 Hz


def _hf_generate(hf, folder, frames, max_delay, **extra):
    """Run transformers' generate; return (codes [B, K, T], per-step guided logits, audio)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    inputs = tok(TEXTS, return_tensors="pt", padding=True)
    captured = []
    decode = hf.audio_encoder.decode

    def spy(codes, *args, **kwargs):
        captured.append(codes[0])
        return decode(codes, *args, **kwargs)

    hf.audio_encoder.decode = spy
    try:
        out = hf.generate(**inputs, **extra, do_sample=False, guidance_scale=3.0, max_new_tokens=frames + max_delay,
                          output_scores=True, return_dict_in_generate=True)
    finally:
        hf.audio_encoder.decode = decode
    codes = captured[0] if len(captured) == 1 else torch.stack(captured, dim=2).flatten(1, 2)  # stereo: L, R interleaved
    return codes, torch.stack(out.scores), out.sequences


def _ours(model, frames, melodies=None, melody_sr=None):
    cond, null = model.prepare_conditions(TEXTS, melodies, melody_sr)
    steps = []
    codes = generate_codes(model.lm, frames, cond, GenerationParams(use_sampling=False, cfg_coef=3.0),
                           null_conditions=null, on_logits=lambda s, logits: steps.append(logits.flatten(0, 1)))
    return codes, torch.stack(steps)


CASES = {
    "mono": dict(),
    "stereo": dict(stereo=True),
    "mono-wide-no-projection": dict(dim=48, layers=3, text_dim=48, card=128, seed=1),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def hf_case(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    hf = tiny_hf_musicgen(folder, **CASES[request.param])
    return request.param, folder, hf


def test_greedy_cfg_tokens_logits_and_audio_match_transformers(hf_case):
    name, folder, hf = hf_case
    model = MusicGen.get_pretrained(folder, device="cpu")
    if name == "mono-wide-no-projection":
        assert not hasattr(hf, "enc_to_dec_proj")  # T5 width == LM width: HF skips the projection
    max_delay = max(model.lm.cfg.delays or range(model.lm.cfg.n_q))
    hf_codes, hf_scores, hf_audio = _hf_generate(hf, folder, FRAMES, max_delay)

    codes, scores = _ours(model, FRAMES)
    assert codes.shape == hf_codes.shape == (2, 8 if name == "stereo" else 4, FRAMES)
    assert torch.equal(codes, hf_codes)
    assert codes.unique().numel() > 5  # a meaningful comparison, not a constant output
    rel = (scores - hf_scores).abs().max() / hf_scores.abs().max()
    assert rel < 1e-4, f"per-step logits differ by {rel:.2e} (relative)"

    # The user-facing API gives the same tokens and decodes them like transformers.
    model.set_generation_params(use_sampling=False, cfg_coef=3.0, duration=FRAMES / model.frame_rate)
    wav, tokens = model.generate(TEXTS, return_tokens=True)
    assert torch.equal(tokens, hf_codes)
    assert wav.shape == hf_audio.shape
    assert torch.allclose(wav, hf_audio, atol=1e-5)


def test_melody_model_matches_transformers(tmp_path):
    hf = tiny_hf_musicgen(tmp_path, melody=True)
    # Tiny chroma settings for the tiny 400 Hz codec (the real model: 32 kHz, n_fft 16384, hop 4096).
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(
        {"feature_extractor_type": "MusicgenMelodyFeatureExtractor", "sampling_rate": 400, "n_fft": 256,
         "hop_length": 64, "feature_size": 12, "num_chroma": 12}))
    model = MusicGen.get_pretrained(tmp_path, device="cpu")
    assert model.supports_melody and model.config.fuse == {"self_wav": "prepend", "description": "prepend"}
    melody = torch.randn(2, 1, 400, generator=torch.Generator().manual_seed(1))
    # Both sides get the same chroma features (chroma extraction itself is tested with the conditioners).
    features = model.conditioners["self_wav"].extractor(melody[:, 0])
    hf_codes, hf_scores, hf_audio = _hf_generate(hf, tmp_path, FRAMES, 3, input_features=features)

    codes, scores = _ours(model, FRAMES, list(melody), 400)
    assert torch.equal(codes, hf_codes)
    rel = (scores - hf_scores).abs().max() / hf_scores.abs().max()
    assert rel < 1e-4
    model.set_generation_params(use_sampling=False, duration=FRAMES / model.frame_rate)
    wav, tokens = model.generate_with_chroma(TEXTS, melody, 400, return_tokens=True)
    assert torch.equal(tokens, hf_codes) and torch.allclose(wav, hf_audio, atol=1e-5)


def test_missing_tokenizer_is_a_clear_error(tmp_path):
    from wavecraft.errors import CheckpointError

    tiny_hf_musicgen(tmp_path)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        (tmp_path / f).unlink()
    with pytest.raises(CheckpointError, match=r"T5 tokenizer is missing \(tokenizer.json or spiece.model"):
        MusicGen.get_pretrained(tmp_path, device="cpu")
