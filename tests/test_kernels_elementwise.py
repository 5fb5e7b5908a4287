"""The C element-wise kernels (wavecraft/kernels/elementwise.c): the codec's ELU and the ELU module
against F.elu, the LM's GELU against float64; and the benchmarks' stream sum (read_probe.c)."""
import pytest
import torch
import torch.nn.functional as F

from wavecraft import kernels
from wavecraft.codec.seanet import ELU

kernel = kernels.elu()
needs_kernel = pytest.mark.skipif(kernel is None, reason="no AVX-512 CPU or C compiler here")


@needs_kernel
def test_kernel_matches_torch_to_an_ulp_over_the_whole_range():
    x = torch.cat([torch.linspace(-100, 100, 100_003), torch.linspace(-1e-3, 1e-3, 10_001),
                   torch.tensor([0.0, -0.0, float("inf"), float("-inf"), 1e-38, -1e-38])])
    ref = torch.expm1(x.double()).where(x <= 0, x.double())
    out = kernel(x)
    assert torch.equal(out[x > 0], x[x > 0])  # the positive side is passed through exactly
    rel = (out.double() - ref).abs() / ref.abs().clamp_min(1e-30)
    assert float(rel[torch.isfinite(ref)].max()) < 2.5e-7
    assert float(out[-4]) == float("inf") and float(out[-3]) == -1.0  # e^-inf - 1
    assert torch.isnan(kernel(torch.tensor([float("nan")] * 17))).all()  # NaN stays NaN (tail lanes too)


@needs_kernel
@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 3, 17), (1, 64, 9000), (5,)])
def test_kernel_writes_into_views_and_leaves_the_rest_alone(shape):
    x = torch.randn(*shape) * 3
    buf = torch.full((*shape[:-1], shape[-1] + 7), 42.0)
    kernel(x, buf[..., 7:])
    assert torch.equal(buf[..., :7], torch.full_like(buf[..., :7], 42.0))
    torch.testing.assert_close(buf[..., 7:], F.elu(x), rtol=3e-7, atol=1e-7)


@needs_kernel
def test_kernel_takes_any_layout_and_checks_shapes():
    x = torch.randn(8, 33)
    torch.testing.assert_close(kernel(x.t()), F.elu(x.t()), rtol=3e-7, atol=1e-7)  # not row-addressable: torch's
    rows = torch.randn(3, 40, 16) * 3  # [B, T, C] memory seen as a channels-last [B, C, T] view
    cl = rows.transpose(1, 2)
    out = kernel(cl)
    assert out.stride() == cl.stride()
    torch.testing.assert_close(out, F.elu(cl), rtol=3e-7, atol=1e-7)
    buf = torch.zeros(3, 45, 16).transpose(1, 2)  # and into a time slice of a bigger one
    kernel(cl, buf[..., 5:])
    torch.testing.assert_close(buf[..., 5:], F.elu(cl), rtol=3e-7, atol=1e-7)
    assert not buf[..., :5].any()
    with pytest.raises(ValueError, match="out has shape"):
        kernel(x, torch.empty(8, 32))


def test_elu_module_fast_equals_plain_and_training_keeps_gradients():
    x = torch.randn(2, 16, 100) * 2
    fast, plain = ELU(), ELU()
    plain.fast = False
    with torch.no_grad():
        torch.testing.assert_close(fast(x), plain(x), rtol=3e-7, atol=1e-7)
        out = torch.zeros(2, 16, 103)
        fast.into(x, out[..., 3:])
        torch.testing.assert_close(out[..., 3:], F.elu(x), rtol=3e-7, atol=1e-7)
    x.requires_grad_(True)
    fast(x).sum().backward()  # gradients on: F.elu
    assert x.grad is not None



@needs_kernel
@pytest.mark.parametrize("n", [1, 15, 16, 17, 4096, 8193])
def test_gelu_kernel_in_place_is_at_least_as_close_as_torch(n):
    gelu = kernels.gelu()
    g = torch.Generator().manual_seed(n)
    x = torch.cat([torch.randn(n, generator=g) * 4, torch.linspace(-12, 12, 1001)])
    ref = F.gelu(x.double())
    y = x.clone()
    assert gelu(y) is y  # in place
    err, torch_err = (y.double() - ref).abs().max(), (F.gelu(x).double() - ref).abs().max()
    assert float(err) < 6e-7 and float(err) <= float(torch_err) + 1e-7
    assert float(gelu(torch.tensor([float("-inf"), -30.0, 30.0]))[1:].sub(torch.tensor([0.0, 30.0])).abs().max()) == 0
    view = x[::2]  # not contiguous: PyTorch's GELU, a new tensor
    out = gelu(view)
    assert out is not view and torch.equal(out, F.gelu(view))


@pytest.mark.skipif(kernels.stream_sum() is None, reason="no AVX-512 CPU or C compiler here")
@pytest.mark.parametrize("n", [1, 15, 16 * 8 * 2 + 5, 100_003])
@pytest.mark.parametrize("streams", [1, 3, 8, 20])  # 20: clamped to 8
def test_stream_sum_is_the_sum_whatever_the_streams(n, streams):
    x = torch.randn(n, generator=torch.Generator().manual_seed(n))
    total = kernels.stream_sum()(x, streams)
    assert abs(total - x.double().sum().item()) <= 1e-4 * x.abs().sum().item()
    with pytest.raises(ValueError, match="contiguous CPU float32"):
        kernels.stream_sum()(torch.randn(4, 4).t(), streams)
