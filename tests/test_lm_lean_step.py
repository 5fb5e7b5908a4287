"""LeanStep (the planned single-position decode step) against the plain layer-by-layer step."""
import pytest
import torch

from wavecraft.conditioners.base import ConditionTensors
from wavecraft.lm import Conditions, GenerationParams, LMConfig, LMModel, generate_codes
from wavecraft.lm.lean_step import _FoldedCross, _LiveRows, _PlainCross
from wavecraft.lm.quantize import quantize_lm


def tiny(**kw):
    torch.manual_seed(0)
    cfg = dict(n_q=3, card=16, dim=32, num_heads=4, num_layers=2, ffn_dim=64)
    lm = LMModel(LMConfig(**{**cfg, **kw})).eval()
    with torch.no_grad():  # larger weights: peaked logits, so token choices are sensitive to errors
        for name, p in lm.named_parameters():
            if "norm" not in name:
                p.mul_(4.0)
    return lm


def text(batch, length, pad=2):
    g = torch.Generator().manual_seed(3)
    mask = torch.ones(batch, length, dtype=torch.bool)
    mask[0, length - pad:] = False
    return Conditions(cross=ConditionTensors(torch.randn(batch, length, 32, generator=g) * mask[..., None], mask))


def both_paths(lm, cond, frames=12, **params):
    """Tokens and every step's guided logits, once with LeanStep and once without."""
    runs = []
    for lean in (True, False):
        lm.lean_decoding = lean
        seen = []
        codes = generate_codes(lm, frames, cond, GenerationParams(**params), on_logits=lambda s, l: seen.append(l),
                               generator=torch.Generator().manual_seed(5))
        runs.append((codes, torch.stack(seen)))
    lm.lean_decoding = True
    return runs


@torch.no_grad()
def kinds_used(lm, cond):
    state = lm.start_decoding(cond.cat(cond.null()), 2 * cond.batch_size, 4)
    lm.decode(state, torch.zeros(2 * cond.batch_size, lm.cfg.n_q, 1, dtype=torch.long))
    lm.decode(state, torch.zeros(2 * cond.batch_size, lm.cfg.n_q, 1, dtype=torch.long))
    assert all(isinstance(p.cross, _LiveRows) and p.cross.live == cond.batch_size for p in state.lean.layers)
    return {type(p.cross.inner) for p in state.lean.layers}  # the null rows of CFG are skipped


@pytest.mark.parametrize("positional", ["sin", "rope", "sin_rope"])
@pytest.mark.parametrize("length", [3, 9])  # live rows B*H*S = 1*4*3 < 32: folded; 1*4*9 > 32: projections
def test_lean_step_gives_the_plain_step_tokens_and_logits(positional, length):
    lm, cond = tiny(positional=positional), text(1, length, pad=1)
    (lean_codes, lean_logits), (plain_codes, plain_logits) = both_paths(lm, cond)
    assert torch.equal(lean_codes, plain_codes)
    assert torch.allclose(lean_logits, plain_logits, atol=1e-4, rtol=1e-5)
    assert kinds_used(lm, cond) == ({_FoldedCross} if length == 3 else {_PlainCross})


def test_lean_step_with_biases_a_batch_and_sampling():
    lm, cond = tiny(bias_attn=True, bias_ff=True), text(3, 5)
    (a, la), (b, lb) = both_paths(lm, cond, use_sampling=True, top_k=5)
    assert torch.equal(a, b) and torch.allclose(la, lb, atol=1e-4, rtol=1e-5)


def test_lean_step_with_a_masked_prefix():
    lm = tiny(prefix_masking=True)
    g = torch.Generator().manual_seed(1)
    mask = torch.ones(2, 4, dtype=torch.bool)
    mask[1, :2] = False
    cond = Conditions(cross=text(2, 3).cross, prefix=ConditionTensors(torch.randn(2, 4, 32, generator=g), mask))
    (a, la), (b, lb) = both_paths(lm, cond, use_sampling=False)
    assert torch.equal(a, b) and torch.allclose(la, lb, atol=1e-4, rtol=1e-5)


def test_lean_step_without_conditions_and_with_a_prompt():
    lm = tiny(cross_attention=False)
    prompt = torch.randint(0, 16, (2, 3, 4), generator=torch.Generator().manual_seed(2))
    runs = []
    for lean in (True, False):
        lm.lean_decoding = lean
        runs.append(generate_codes(lm, 10, prompt=prompt, params=GenerationParams(use_sampling=False)))
    assert torch.equal(*runs)
    assert torch.equal(runs[0][..., :4], prompt)


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_lean_step_calls_quantised_layers_as_they_are(mode):
    lm = quantize_lm(tiny(), mode)
    cond = text(1, 3)
    (a, la), (b, lb) = both_paths(lm, cond, use_sampling=False)
    assert torch.equal(a, b) and torch.allclose(la, lb, atol=1e-3, rtol=1e-3)
    assert kinds_used(lm, cond) == {_PlainCross}  # no fold through quantised projections


def test_lean_step_refuses_a_position_past_the_cache():
    lm, cond = tiny(), text(1, 3)
    state = lm.start_decoding(cond, 1, 2)
    tokens = torch.zeros(1, 3, 1, dtype=torch.long)
    with torch.no_grad():
        lm.decode(state, tokens)
        lm.decode(state, tokens)
    with torch.no_grad(), pytest.raises(ValueError, match="KV cache holds 2 positions"):
        lm.decode(state, tokens)


@pytest.mark.parametrize("params", [dict(two_step_cfg=True), dict(cfg_coef=1.0)])
def test_lean_step_with_two_step_guidance_and_without_guidance(params):
    lm, cond = tiny(), text(2, 3)
    (a, la), (b, lb) = both_paths(lm, cond, use_sampling=False, **params)
    assert torch.equal(a, b) and torch.allclose(la, lb, atol=1e-4, rtol=1e-5)


def test_null_condition_rows_skip_cross_attention():
    lm, cond = tiny(), text(2, 3)
    null = cond.null()
    with torch.no_grad():
        for conditions, live in ((null, 0), (cond.cat(null), 2), (null.cat(cond), 4)):
            state = lm.start_decoding(conditions, conditions.batch_size, 4)
            tokens = torch.zeros(conditions.batch_size, 3, 1, dtype=torch.long)
            lm.decode(state, tokens)
            lm.decode(state, tokens)
            cross = state.lean.layers[0].cross
            if live == 0:
                assert cross is None  # nothing for cross-attention to add to any row
            elif live == 2:
                assert isinstance(cross, _LiveRows) and cross.live == 2
            else:  # null rows first: nothing trails, every row is computed
                assert cross is not None and not isinstance(cross, _LiveRows)
