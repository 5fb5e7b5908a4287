"""FusedStep (the whole int8 decode step in one C call) against LeanStep's Python-driven int8 step."""
import pytest
import torch

from wavecraft.conditioners.base import ConditionTensors
from wavecraft.kernels import decode_scratch_size, decode_step, decode_step_takes_int8
from wavecraft.lm import Conditions, GenerationParams, LMConfig, LMModel, generate_codes
from wavecraft.lm.fused_step import FusedStep
from wavecraft.lm.quantize import quantize_lm

pytestmark = pytest.mark.skipif(not decode_step_takes_int8(), reason="needs the C kernels on an AVX512-VNNI CPU")


def tiny(kind="int8", kv_bfloat16=True, **kw):
    """The smallest shape the kernel takes: width 64, head size 32, feed-forward 128."""
    torch.manual_seed(0)
    cfg = dict(n_q=3, card=32, dim=64, num_heads=2, num_layers=3, ffn_dim=128)
    lm = LMModel(LMConfig(**{**cfg, **kw})).eval()
    with torch.no_grad():  # larger weights: peaked logits, a wide spread of activations
        for name, p in lm.named_parameters():
            if "norm" not in name:
                p.mul_(3.0)
            elif name.endswith("weight"):
                p.uniform_(0.5, 1.5)  # the kernel must apply the norms' own weights and biases
            else:
                p.uniform_(-0.2, 0.2)
    return lm if kind == "fp32" else quantize_lm(lm, kind, kv_bfloat16=kv_bfloat16)


def text(batch, length, pad=0):
    g = torch.Generator().manual_seed(3)
    mask = torch.ones(batch, length, dtype=torch.bool)
    if pad:
        mask[0, length - pad:] = False
    return Conditions(cross=ConditionTensors(torch.randn(batch, length, 64, generator=g) * mask[..., None], mask))


def both(lm, cond, steps=12, batch=1, cfg=True, prompt=None):
    """Logits of every step [steps, rows, K, card] with FusedStep and without (`fused_decoding`),
    fed the same tokens (teacher forcing: a sampled token that differs would make the runs
    incomparable), and whether each run used the fused step."""
    rows = 2 * batch if cfg else batch
    conditions = Conditions() if cond is None else (cond.cat(cond.null()) if cfg else cond)
    g = torch.Generator().manual_seed(5)
    first = prompt if prompt is not None else torch.randint(0, lm.cfg.card, (rows, lm.cfg.n_q, 1), generator=g)
    tokens = [torch.randint(0, lm.cfg.card, (rows, lm.cfg.n_q, 1), generator=g) for _ in range(steps)]
    runs = []
    for fused in (True, False):
        lm.fused_decoding = fused
        with torch.no_grad():
            state = lm.start_decoding(conditions, rows, first.shape[-1] + steps)
            logits = [lm.decode(state, first)] + [lm.decode(state, t) for t in tokens]
        runs.append((torch.stack(logits), state.lean is not None and state.lean.fused is not None))
    lm.fused_decoding = True
    return runs


def close(a, b, kind):
    """The layer norm (and fp32 products) sum in another order: tiny differences, which int8
    activation pieces and a bfloat16 cache can round to one step of their own grid. Far below
    int8's own error (~1e-2); fp32 stays at float rounding."""
    return (a - b).abs().max().item() <= (1e-3 if kind == "int8" else 2e-5) * b.abs().max().item()


KINDS = pytest.mark.parametrize("kind", ["int8", "fp32"])


@pytest.mark.parametrize("kind,kv_bfloat16", [("int8", True), ("int8", False), ("fp32", False)])
@pytest.mark.parametrize("cond_length", [5, 40])  # fp32: folded cross-attention (1*2*5 < 64), projections (80)
def test_fused_step_matches_the_python_step_with_guidance(kind, kv_bfloat16, cond_length):
    lm, cond = tiny(kind, kv_bfloat16), text(1, cond_length)
    (la, fused), (lb, plain) = both(lm, cond)
    assert fused and not plain
    assert close(la, lb, kind) and torch.equal(la[0], lb[0])  # the first (multi-position) step is not fused
    assert not torch.equal(la, lb)  # the fused step did run: its sums round differently


@KINDS
@pytest.mark.parametrize("cond_length", [6, 40])
@pytest.mark.parametrize("batch,cfg", [(2, False), (2, True), (3, False), (4, False)])  # 2, 4, 3, 4 rows
def test_fused_step_with_masked_text_and_several_prompts(kind, cond_length, batch, cfg):
    lm, cond = tiny(kind), text(batch, cond_length, pad=3)  # row 0 does not attend to its last 3 tokens
    (la, fused), (lb, _) = both(lm, cond, batch=batch, cfg=cfg)
    assert fused and close(la, lb, kind)


@KINDS
def test_fused_step_with_a_masked_prefix_and_a_prompt(kind):
    lm = tiny(kind, prefix_masking=True)
    g = torch.Generator().manual_seed(1)
    mask = torch.ones(1, 4, dtype=torch.bool)
    mask[0, :2] = False  # two padded prefix positions the self-attention must not see
    cond = Conditions(cross=text(1, 3).cross, prefix=ConditionTensors(torch.randn(1, 4, 64, generator=g), mask))
    prompt = torch.randint(0, 32, (2, 3, 5), generator=g)
    (la, fused), (lb, _) = both(lm, cond, prompt=prompt)
    assert fused and close(la, lb, kind)


@KINDS
def test_fused_step_without_cross_attention(kind):
    lm = tiny(kind, cross_attention=False)
    (la, fused), (lb, _) = both(lm, None, cfg=False)
    assert fused and close(la, lb, kind)


def test_generation_runs_the_fused_step(monkeypatch):
    calls = []
    original = FusedStep.__call__
    monkeypatch.setattr(FusedStep, "__call__", lambda self, x, t: calls.append(t) or original(self, x, t))
    codes = generate_codes(tiny(), 10, text(1, 4), GenerationParams(use_sampling=True, top_k=4),
                           generator=torch.Generator().manual_seed(0))
    assert codes.shape == (1, 3, 10) and calls == list(range(1, len(calls) + 1)) and len(calls) >= 10


@pytest.mark.parametrize("case", ["int4", "biases", "rope", "six rows", "narrow"])
def test_fused_step_is_not_built_where_it_does_not_apply(case):
    if case == "int4":
        lm = quantize_lm(LMModel(LMConfig(n_q=3, card=32, dim=64, num_heads=2, num_layers=2, ffn_dim=128)), "int4")
    elif case == "narrow":  # head size 16: the attention kernel has no such case
        lm = tiny(num_heads=4)
    else:
        lm = tiny(**{"biases": dict(bias_attn=True), "rope": dict(positional="rope"), "six rows": {}}[case])
    batch = 3 if case == "six rows" else 1  # three prompts and their null rows: batch 6
    (la, fused), (lb, _) = both(lm, text(batch, 3), steps=4, batch=batch)
    assert not fused and torch.equal(la, lb)


def test_kernel_refuses_inputs_it_does_not_take():
    run = decode_step()
    layers = torch.zeros(1, 25, dtype=torch.int64)
    args = dict(fp32=False, heads=2, ffn=128, t=0, cache=torch.zeros(2, 2, 8, 32), self_allowed=None, live=1,
                cond_length=0, cross_keys=None, cross_allowed=None, eps=1e-5,
                scratch=torch.zeros(decode_scratch_size(2, 64, 128)))
    for bad in (dict(t=8), dict(live=3), dict(scratch=torch.zeros(10)), dict(heads=4)):  # past the cache, ...
        with pytest.raises(ValueError, match="decode step: unsupported inputs"):
            run(torch.zeros(2, 64), layers, **{**args, **bad})
    with pytest.raises(ValueError, match="unsupported inputs"):
        run(torch.zeros(3, 64), layers, **args)  # three rows


@KINDS
def test_fused_step_does_not_depend_on_how_the_threads_share_the_products(kind):
    """Each product's last quarter goes to whichever thread asks first: any thread count, any
    split, the same logits bit for bit."""
    lm, cond = tiny(kind), text(1, 40)
    threads = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3, 2):
            torch.set_num_threads(n)
            (logits, fused), _ = both(lm, cond, steps=6)
            assert fused
            results.append(logits)
    finally:
        torch.set_num_threads(threads)
    for logits in results[1:]:
        assert torch.equal(logits, results[0])
