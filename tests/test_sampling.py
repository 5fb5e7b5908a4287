"""Token sampling: greedy, temperature, top-k, top-p, seeds, CFG mixing."""
import pytest
import torch

from wavecraft.errors import ConfigError
from wavecraft.lm.sampling import cfg_mix, check_sampling_params, sample_next, sample_top_k, sample_top_p


def _gen(seed):
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def test_greedy_paths_take_the_argmax():
    logits = torch.randn(3, 4, 50)
    best = logits.argmax(-1)
    assert torch.equal(sample_next(logits, use_sampling=False), best)
    assert torch.equal(sample_next(logits, temperature=0.0), best)
    assert torch.equal(sample_next(logits, top_k=1, generator=_gen(0)), best)
    assert torch.equal(sample_next(logits, top_p=1e-6, generator=_gen(0)), best)  # nucleus of one token


def test_seed_reproduces_and_differs():
    logits = torch.zeros(8, 4, 100)  # uniform: any bias in the seed handling would show
    a = sample_next(logits, top_k=50, generator=_gen(7))
    b = sample_next(logits, top_k=50, generator=_gen(7))
    c = sample_next(logits, top_k=50, generator=_gen(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_top_k_only_draws_from_the_k_best_with_renormalised_probabilities():
    probs = torch.tensor([0.4, 0.3, 0.2, 0.06, 0.04])
    draws = sample_top_k(probs.expand(20000, 5), 3, _gen(0))
    assert set(draws.unique().tolist()) <= {0, 1, 2}
    freq = torch.bincount(draws, minlength=5).float() / draws.numel()
    expected = torch.tensor([4, 3, 2, 0, 0]) / 9
    assert torch.allclose(freq, expected, atol=0.02)


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    # mass before token 2 is 0.8 > 0.7, so only tokens 0 and 1 stay, renormalised to 5/8, 3/8
    draws = sample_top_p(probs.expand(20000, 4), 0.7, _gen(1))
    freq = torch.bincount(draws, minlength=4).float() / draws.numel()
    assert freq[2] == 0 and freq[3] == 0
    assert torch.allclose(freq[:2], torch.tensor([5 / 8, 3 / 8]), atol=0.02)


def test_temperature_sharpens():
    logits = torch.tensor([2.0, 1.0, 0.0]).expand(20000, 3)
    cold = sample_next(logits, temperature=0.25, generator=_gen(2))
    warm = sample_next(logits, temperature=4.0, generator=_gen(2))
    assert (cold == 0).float().mean() > 0.95
    assert (warm == 0).float().mean() < 0.5


def test_top_p_overrides_top_k_like_audiocraft():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05])).expand(5000, 4)
    draws = sample_next(logits, top_k=1, top_p=0.9, generator=_gen(3))
    assert draws.unique().numel() > 1  # top_k=1 would have made it greedy


def test_cfg_mix_formula():
    cond, uncond = torch.tensor([1.0, 4.0]), torch.tensor([2.0, 1.0])
    assert torch.equal(cfg_mix(cond, uncond, 3.0), torch.tensor([2.0 + 3 * -1.0, 1.0 + 3 * 3.0]))
    assert torch.equal(cfg_mix(cond, uncond, 1.0), cond)


def test_parameter_checks():
    check_sampling_params(1.0, 250, 0.0, 3.0)
    with pytest.raises(ConfigError, match="top_p must be in"):
        check_sampling_params(1.0, 0, 1.5, 3.0)
    with pytest.raises(ConfigError, match="temperature must be >= 0"):
        check_sampling_params(-1.0, 0, 0.0, 3.0)
    with pytest.raises(ConfigError, match="top_k must be >= 0"):
        check_sampling_params(1.0, -2, 0.0, 3.0)
