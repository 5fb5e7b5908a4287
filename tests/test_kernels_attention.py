"""The C decode-attention kernel (wavecraft/kernels/attention.c) against attention in float64, and
LeanStep with it against the plain decode step."""
import pytest
import torch

from wavecraft import kernels
from wavecraft.lm import lean_step

attend = kernels.attention_decode()
needs_kernel = pytest.mark.skipif(attend is None, reason="no AVX-512 CPU or C compiler here")


def _reference(q, k, v, mask):
    scores = (q.double() @ k.double().transpose(-1, -2)) * q.shape[-1] ** -0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v.double()


def _cache(B, H, n, hd, dtype, seed=0):
    """q [B, H, 1, hd] as a view of a fused q/k/v projection; k, v sliced from [B, H, max_len, hd] buffers."""
    g = torch.Generator().manual_seed(seed)
    qkv = torch.randn(B, 3, H, 1, hd, generator=g)
    keys = (torch.randn(B, H, n + 40, hd, generator=g) * 2).to(dtype)
    values = torch.randn(B, H, n + 40, hd, generator=g).to(dtype)
    return qkv[:, 0], keys[:, :, :n], values[:, :, :n]


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("hd", [32, 64, 128])
@pytest.mark.parametrize("n", [1, 17, 300])
def test_kernel_matches_attention(dtype, hd, n):
    q, k, v = _cache(2, 3, n, hd, dtype)
    g = torch.Generator().manual_seed(1)
    masks = [None, torch.rand(2, 1, 1, n, generator=g) > 0.4, torch.rand(1, 1, 1, n, generator=g) > 0.4]
    for mask in masks:
        if mask is not None:
            mask[..., 0] = True
        out = attend(q, k, v, mask)
        assert out is not None and out.shape == (2, 3, 1, hd) and out.dtype == torch.float32
        torch.testing.assert_close(out.double(), _reference(q, k, v, mask), rtol=1e-5, atol=2e-6)


@needs_kernel
def test_kernel_declines_what_it_does_not_take():
    q, k, v = _cache(1, 2, 5, 48, torch.float32)
    assert attend(q, k, v, None) is None  # head size 48
    q, k, v = _cache(1, 2, 5, 64, torch.float32)
    assert attend(q, k.transpose(-1, -2).contiguous().transpose(-1, -2), v, None) is None  # rows not contiguous
    assert attend(q.double(), k, v, None) is None
    assert attend(q, k, v.to(torch.bfloat16), None) is None  # mixed cache dtypes
    assert attend(q, k, v, torch.ones(1, 2, 1, 5, dtype=torch.bool)) is None  # a per-head mask
    assert attend(q, k, v, torch.zeros(1, 1, 1, 5)) is None  # an additive mask
    assert attend(torch.randn(1, 2, 3, 64), k, v, None) is None  # more than one query position


@needs_kernel
@pytest.mark.parametrize("length", [5, 40])  # cross-attention folded, or through the kernel (40 text positions)
def test_lean_step_with_the_kernel_gives_the_plain_step(monkeypatch, length):
    from test_lm_lean_step import both_paths, text, tiny

    calls = []
    real = lean_step.attention_decode()

    def counting(q, k, v, mask):
        out = real(q, k, v, mask)
        calls.append((out is not None, k.shape[0]))
        return out

    monkeypatch.setattr(lean_step, "attention_decode", lambda: counting)
    lm, cond = tiny(dim=32, num_heads=1), text(2, length)  # head size 32: the kernel's
    (lean_codes, lean_logits), (plain_codes, plain_logits) = both_paths(lm, cond, use_sampling=True, top_k=4)
    assert calls and all(used for used, _ in calls)
    cross = sum(rows == 2 for _, rows in calls)  # cross-attention runs the 2 conditional rows, self all 4
    assert (cross > 0) == (length == 40) and len(calls) - cross > 0
    assert torch.equal(lean_codes, plain_codes)
    torch.testing.assert_close(lean_logits, plain_logits, atol=1e-4, rtol=1e-5)
