"""The codec's C elementwise kernels (wavecraft/kernels/elementwise.c) against PyTorch: ELU (and
the ELU module), and the overlap-add of transposed convolutions (one pass, and piece by piece)."""
import pytest
import torch
import torch.nn.functional as F

from wavecraft import kernels
from wavecraft.codec.seanet import ELU, frame_outputs

kernel = kernels.elu()
overlap = kernels.overlap_add()
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
@pytest.mark.parametrize("stride,frames", [(4, 1), (5, 7), (8, 30)])
def test_overlap_add_is_the_transposed_convolution(stride, frames):
    g = torch.Generator().manual_seed(stride)
    x, w, b = torch.randn(2, 6, frames, generator=g), torch.randn(6, 3, 2 * stride, generator=g), torch.randn(3, generator=g)
    ref = F.conv_transpose1d(x, w, b, stride)
    out = overlap(frame_outputs(x, w, stride), b)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(overlap(frame_outputs(x, w, stride), None), F.conv_transpose1d(x, w, None, stride),
                               rtol=1e-5, atol=1e-5)


@needs_kernel
def test_overlap_add_in_pieces_with_carry_adds_exactly_what_one_pass_does():
    stride = 4
    g = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(1, 8, 11, generator=g), torch.randn(8, 5, 2 * stride, generator=g), torch.randn(5, generator=g)
    whole = overlap(frame_outputs(x, w, stride), b)
    first = overlap(frame_outputs(x[..., :6], w, stride), b, None, bias_on_tail=False)
    done, carry = first[..., : 6 * stride], first[..., 6 * stride :]
    second = overlap(frame_outputs(x[..., 6:], w, stride), b, carry.clone(), bias_on_tail=False)
    last = second[..., -stride:] + b[:, None]  # the end of the stream: the tail gets its bias
    joined = torch.cat([done, second[..., :-stride], last], dim=-1)
    assert torch.equal(joined, whole)
    with pytest.raises(ValueError, match="carry has shape"):
        overlap(frame_outputs(x, w, stride), b, torch.zeros(1, 5, 3))
    with pytest.raises(ValueError, match="expects contiguous"):
        overlap(torch.zeros(1, 5, 3, 4, 2), b)
