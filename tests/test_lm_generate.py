"""The generation loop: CFG mixing, two-step CFG, prompts, every pattern, seeds, progress."""
import pytest
import torch

from wavecraft.conditioners.base import ConditionTensors
from wavecraft.lm import Conditions, GenerationParams, LMConfig, LMModel, generate_codes

GREEDY = dict(use_sampling=False)


def tiny(pattern="delay", **kw):
    torch.manual_seed(0)
    lm = LMModel(LMConfig(n_q=3, card=16, dim=32, num_heads=4, num_layers=2, ffn_dim=64, pattern=pattern, **kw)).eval()
    with torch.no_grad():  # larger weights: peaked logits, varied greedy choices
        for name, p in lm.named_parameters():
            if "norm" not in name:
                p.mul_(6.0)
    return lm


def text_conditions(batch=2):
    g = torch.Generator().manual_seed(3)
    mask = torch.ones(batch, 4, dtype=torch.bool)
    mask[0, 3] = False
    return Conditions(cross=ConditionTensors(torch.randn(batch, 4, 32, generator=g) * mask[..., None], mask))


def guided_reference(lm, codes, cond, coef):
    """Teacher-forced logits for the final codes, mixed by hand: uncond + coef * (cond - uncond)."""
    with torch.no_grad():
        c, _ = lm.compute_predictions(codes, cond)
        u, _ = lm.compute_predictions(codes, cond.null())
    return u + coef * (c - u)


@pytest.mark.parametrize("two_step", [False, True])
def test_cfg_logits_are_mixed_as_uncond_plus_coef_times_difference(two_step):
    lm, cond = tiny(), text_conditions()
    seen = {}
    params = GenerationParams(cfg_coef=3.0, two_step_cfg=two_step, **GREEDY)
    codes = generate_codes(lm, 6, cond, params, on_logits=lambda s, l: seen.__setitem__(s, l.clone()))
    ref = guided_reference(lm, codes, cond, 3.0)  # [B, K, T, card]
    pattern = lm.cfg.make_pattern(6)
    for k in range(3):
        for t in range(6):
            step = int(pattern.steps[k, t])
            assert torch.allclose(seen[step][:, k], ref[:, k, t], atol=1e-4, rtol=1e-4)
            assert torch.equal(codes[:, k, t], ref[:, k, t].argmax(-1))  # greedy picked the guided argmax


def test_two_step_cfg_gives_the_batched_result():
    lm, cond = tiny(), text_conditions()
    a, b = [], []
    batched = generate_codes(lm, 8, cond, GenerationParams(**GREEDY), on_logits=lambda s, l: a.append(l))
    separate = generate_codes(lm, 8, cond, GenerationParams(two_step_cfg=True, **GREEDY), on_logits=lambda s, l: b.append(l))
    assert torch.equal(batched, separate)
    assert all(torch.allclose(x, y, atol=1e-4) for x, y in zip(a, b))


def test_cfg_coef_one_is_plain_conditional_and_coef_changes_output():
    lm, cond = tiny(), text_conditions()
    plain = generate_codes(lm, 8, cond, GenerationParams(cfg_coef=1.0, **GREEDY))
    logits, _ = lm.compute_predictions(plain, cond)
    assert torch.equal(plain, logits.argmax(-1))
    guided = generate_codes(lm, 8, cond, GenerationParams(cfg_coef=3.0, **GREEDY))
    assert not torch.equal(plain, guided)


def test_custom_null_conditions_are_used():
    lm, cond = tiny(), text_conditions()
    other = Conditions(cross=ConditionTensors(torch.randn(2, 4, 32), torch.ones(2, 4, dtype=torch.bool)))
    seen = {}
    codes = generate_codes(lm, 5, cond, GenerationParams(**GREEDY), null_conditions=other,
                           on_logits=lambda s, l: seen.__setitem__(s, l))
    c, _ = lm.compute_predictions(codes, cond)
    u, _ = lm.compute_predictions(codes, other)
    assert torch.allclose(seen[1][:, 0], (u + 3 * (c - u))[:, 0, 0], atol=1e-4)


@pytest.mark.parametrize("pattern", ["parallel", "delay", "unroll", "coarse_first"])
def test_every_pattern_generates_self_consistent_greedy_codes(pattern):
    lm, cond = tiny(pattern), text_conditions()
    codes = generate_codes(lm, 5, cond, GenerationParams(cfg_coef=1.0, **GREEDY))
    assert codes.shape == (2, 3, 5) and codes.min() >= 0 and codes.max() < 16
    logits, _ = lm.compute_predictions(codes, cond)
    assert torch.equal(codes, logits.argmax(-1))


@pytest.mark.parametrize("pattern", ["delay", "unroll", "coarse_first"])
def test_prompt_is_kept_and_conditions_the_rest(pattern):
    lm, cond = tiny(pattern), text_conditions()
    prompt = torch.randint(0, 16, (2, 3, 3))
    codes = generate_codes(lm, 7, cond, GenerationParams(cfg_coef=1.0, **GREEDY), prompt=prompt)
    assert torch.equal(codes[..., :3], prompt)
    logits, _ = lm.compute_predictions(codes, cond)
    assert torch.equal(codes[..., 3:], logits.argmax(-1)[..., 3:])  # continuation saw the prompt
    other = generate_codes(lm, 7, cond, GenerationParams(cfg_coef=1.0, **GREEDY), prompt=(prompt + 5) % 16)
    assert not torch.equal(other[..., 3:], codes[..., 3:])


def test_seeded_sampling_is_reproducible():
    lm, cond = tiny(), text_conditions()
    params = GenerationParams(top_k=10)

    def run(seed):
        return generate_codes(lm, 10, cond, params, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(run(5), run(5))
    assert not torch.equal(run(5), run(6))


def test_unconditional_batch_and_progress():
    lm = tiny()
    calls = []
    codes = generate_codes(lm, 4, None, GenerationParams(**GREEDY), num_samples=3, progress=lambda d, t: calls.append((d, t)))
    assert codes.shape == (3, 3, 4)
    total = lm.cfg.make_pattern(4).num_steps - 1
    assert calls == [(i, total) for i in range(1, total + 1)]


def test_bad_inputs():
    lm = tiny()
    with pytest.raises(ValueError, match="batch size"):
        generate_codes(lm, 4, text_conditions(2), prompt=torch.zeros(3, 3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"prompt codes must lie in \[0, 16\)"):
        generate_codes(lm, 4, text_conditions(2), prompt=torch.full((2, 3, 2), 16))
    with pytest.raises(ValueError, match="num_samples"):
        generate_codes(lm, 4, None)
