"""Weight-only int8 / int4 quantisation of the LM: kernels, logits vs fp32, tokens, API.

Stated bounds (random weights; teacher-forced, and along a cached greedy decode): int8 max logit
error < 2% of the largest logit with >= 95% of argmax tokens unchanged; int4 (groups of 32) < 15%
and >= 80%.
"""
import copy

import pytest
import torch
import torch.nn.functional as F

from wavecraft.conditioners.base import ConditionTensors
from wavecraft.errors import ConfigError
from wavecraft.lm import Conditions, GenerationParams, LMConfig, LMModel, generate_codes
from wavecraft.lm.quantize import Int4Linear, Int8Linear, quantize_lm, weight_bytes

BOUNDS = {"int8": (0.02, 0.95), "int4": (0.15, 0.80)}


def small_lm():
    torch.manual_seed(0)
    return LMModel(LMConfig(n_q=2, card=64, dim=64, num_heads=4, num_layers=2, ffn_dim=128)).eval()


def conditions():
    g = torch.Generator().manual_seed(3)
    return Conditions(cross=ConditionTensors(torch.randn(2, 5, 64, generator=g), torch.ones(2, 5, dtype=torch.bool)))


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_quantised_linear_matches_its_dequantised_weight_and_the_original(mode):
    torch.manual_seed(1)
    linear = torch.nn.Linear(128, 48, bias=True)
    q = Int8Linear.from_linear(linear) if mode == "int8" else Int4Linear.from_linear(linear, 32)
    x = torch.randn(3, 5, 128)
    out = q(x)
    assert out.shape == (3, 5, 48) and out.dtype == torch.float32
    # The kernel computes with the stored weight: only bf16 rounding of activations separates them.
    exact = F.linear(x, q.dequantized(), linear.bias)
    assert (out - exact).abs().max() / exact.abs().max() < 1e-2
    # Against the float weight: the quantisation error itself (half a step per weight).
    weight_err = (q.dequantized() - linear.weight).abs().max() / linear.weight.abs().max()
    assert weight_err < (0.005 if mode == "int8" else 0.1)
    assert (out - linear(x)).abs().max() / linear(x).abs().max() < (0.02 if mode == "int8" else 0.15)


def test_int4_plain_layout_equals_the_cpu_kernel_layout():
    """The portable nibble layout (used off CPU, dequantised on the fly) holds the same weights."""
    torch.manual_seed(2)
    linear = torch.nn.Linear(64, 32, bias=False)
    packed = Int4Linear.from_linear(linear, 32)
    plain = Int4Linear.from_linear(linear, 32, layout="plain")
    assert (packed.layout, plain.layout) == ("cpu", "plain")
    # Read back through the kernel, the packed weights come out rounded to bfloat16.
    assert torch.allclose(plain.dequantized(), packed.dequantized(), rtol=2**-7, atol=1e-6)
    x = torch.randn(4, 64)
    assert (plain(x) - packed(x)).abs().max() < 1e-2 * packed(x).abs().max()


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_quantised_lm_logits_and_tokens_stay_close_to_fp32(mode):
    lm, cond = small_lm(), conditions()
    q = quantize_lm(copy.deepcopy(lm), mode, group_size=32)
    assert q.quantization == mode
    assert not any(isinstance(m, torch.nn.Linear) for m in q.modules())
    codes = torch.randint(0, 64, (2, 2, 40), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        ref, _ = lm.compute_predictions(codes, cond)
        out, _ = q.compute_predictions(codes, cond)
    max_err, min_agree = BOUNDS[mode]
    assert (out - ref).abs().max() / ref.abs().max() < max_err
    assert (out.argmax(-1) == ref.argmax(-1)).float().mean() >= min_agree
    ratio = weight_bytes(q) / weight_bytes(lm)
    assert ratio < (0.27 if mode == "int8" else 0.2)  # 1 byte (+ scales) or 0.5 byte (+ groups) per weight


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_quantised_decoding_with_its_bfloat16_cache_stays_close_to_fp32(mode):
    """The decode path (KV cache in bfloat16 for quantised models) against fp32 teacher forcing."""
    lm, cond = small_lm(), conditions()
    q = quantize_lm(copy.deepcopy(lm), mode, group_size=32)
    assert q.kv_dtype == torch.bfloat16 and q.start_decoding(cond, 2, 4).cache.keys[0].dtype == torch.bfloat16
    seen = {}
    codes = generate_codes(q, 30, cond, GenerationParams(use_sampling=False, cfg_coef=1.0),
                           on_logits=lambda s, x: seen.__setitem__(s, x))
    sequence, _ = lm.cfg.make_pattern(30).build(codes, lm.cfg.special_token)
    with torch.no_grad():
        full = lm(sequence, cond)  # logits at step s predict step s + 1
    steps = sorted(seen)
    decoded, ref = torch.stack([seen[s] for s in steps], 2), full[:, :, [s - 1 for s in steps]]
    max_err, min_agree = BOUNDS[mode]
    assert (decoded - ref).abs().max() / ref.abs().max() < max_err
    assert (decoded.argmax(-1) == ref.argmax(-1)).float().mean() >= min_agree


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_quantised_generation_is_reproducible_with_a_seed(mode):
    q, cond = quantize_lm(small_lm(), mode, group_size=32), conditions()
    params = GenerationParams(top_k=10)
    a = generate_codes(q, 12, cond, params, generator=torch.Generator().manual_seed(5))
    b = generate_codes(q, 12, cond, params, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_bad_modes_and_double_quantisation_are_clear_errors():
    lm = small_lm()
    with pytest.raises(ConfigError, match="int8"):
        quantize_lm(lm, "int3")
    quantize_lm(lm, "int8")
    with pytest.raises(ConfigError, match="already quantised"):
        quantize_lm(lm, "int4")
    with pytest.raises(ConfigError, match="divisible by 32"):
        Int4Linear.from_linear(torch.nn.Linear(40, 16))


def test_musicgen_loads_quantised_and_refuses_to_save_it(tmp_path):
    from wavecraft.models.musicgen import MusicGen, describe
    from wavecraft.models.tiny import tiny_hf_musicgen

    hf = tiny_hf_musicgen(tmp_path / "hf")
    model = MusicGen.get_pretrained(tmp_path / "hf", device="cpu", quantize="int8")
    assert "int8" in describe(model)
    assert model.lm.num_parameters() == hf.decoder.num_parameters()  # quantised weights still counted
    model.set_generation_params(duration=0.1)
    wav = model.generate(["lofi beat"], seed=1)
    assert wav.shape == (1, 1, 40) and torch.isfinite(wav).all()
    with pytest.raises(ConfigError, match="quantised"):
        model.save_pretrained(tmp_path / "out")
    with pytest.raises(ConfigError, match="int8"):
        MusicGen.get_pretrained(tmp_path / "hf", device="cpu", quantize="int2")
