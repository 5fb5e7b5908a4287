"""The C int8 decode kernel (wavecraft/kernels) against the dequantised fp32 product, and its fallbacks."""
import subprocess
import sys

import pytest
import torch

from wavecraft import kernels
from wavecraft.lm.quantize import Int8Linear

kernel = kernels.int8_matmul()
needs_kernel = pytest.mark.skipif(kernel is None, reason="no AVX-512 CPU or C compiler here")


needs_vnni = pytest.mark.skipif(kernels.int8_matmul(True) is None, reason="no AVX512-VNNI CPU here")


def _problem(shape: tuple[int, int], rows: int, seed: int):
    """int8 weights [N, K], scales, bias and activations [rows, K]."""
    K, N = shape
    g = torch.Generator().manual_seed(seed)
    q = torch.randint(-127, 128, (N, K), dtype=torch.int8, generator=g)
    scales = torch.rand(N, generator=g) + 0.1
    bias = torch.randn(N, generator=g)
    return q, scales, bias, torch.randn(rows, K, generator=g), g


@needs_kernel
@pytest.mark.parametrize("rows", [1, 2, 3, 4])  # beyond two, rows go by pairs over each block of weights
@pytest.mark.parametrize("shape", [(64, 48), (32, 7), (1024, 4098)])  # N % 4 != 0 exercises the row tail
def test_fp32_activation_kernel_matches_the_dequantised_product(rows, shape):
    exact = kernels.int8_matmul(False)
    q, scales, bias, x, _ = _problem(shape, rows, 0)
    ref = (x.double() @ q.double().t()) * scales.double()
    out = exact(x, q, scales, None)
    assert out.shape == (rows, shape[1]) and out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-6 * float(ref.abs().max()))
    torch.testing.assert_close(exact(x, q, scales, bias).double(), ref + bias.double(), rtol=1e-5,
                               atol=1e-6 * float(ref.abs().max()))


@needs_vnni
@pytest.mark.parametrize("rows", [1, 2, 3, 4])
@pytest.mark.parametrize("shape", [(64, 48), (1024, 4098), (4096, 1024)])
def test_split_activation_kernel_is_within_its_error_bound(rows, shape):
    split = kernels.int8_matmul(True)
    q, scales, bias, x, g = _problem(shape, rows, 1)
    x = x * torch.rand(rows, 1, generator=g) * 10
    x[0, 3] = 0.0  # exact zeros stay exact
    ref = (x.double() @ q.double().t()) * scales.double() + bias.double()
    out = split(x, q, scales, bias).double()
    # each activation is carried to within max|x| / (2 * 127 * 254): the output error is at most
    # that times the row's sum of |weights| (plus fp32 rounding of the sums)
    bound = x.abs().amax(1, keepdim=True).double() / (2 * 127 * 254) * (q.double().abs().sum(1) * scales.double())
    err = (out - ref).abs()
    assert bool((err <= bound * 1.01 + 1e-6 * ref.abs().max()).all()), float((err / bound).max())
    assert float(err.max()) > 0  # it really is the split path, not the fp32 one
    assert float((out - ref).abs().max() / ref.abs().max()) < 1e-4
    with pytest.raises(ValueError, match="multiple of 64"):
        split(torch.randn(1, 48), torch.zeros(8, 48, dtype=torch.int8), torch.ones(8), None)


@needs_kernel
@pytest.mark.parametrize("split", [False, None])
def test_kernel_applies_gelu_to_its_result(split):
    run = kernels.int8_matmul(split)
    q, scales, bias, x, _ = _problem((1024, 4098), 2, 3)
    plain = run(x, q, scales, bias)
    fused = run(x, q, scales, bias, True)
    torch.testing.assert_close(fused, torch.nn.functional.gelu(plain), rtol=1e-6, atol=2e-6)
    layer = Int8Linear.from_linear(torch.nn.Linear(128, 64))
    h = torch.randn(2, 128)
    product = layer.product_2d_gelu()
    torch.testing.assert_close(product(h), torch.nn.functional.gelu(layer(h)), rtol=1e-6, atol=2e-6)
    h5 = torch.randn(5, 128)  # more rows than the kernel takes: forward, then F.gelu
    torch.testing.assert_close(product(h5), torch.nn.functional.gelu(layer(h5)))


@needs_kernel
def test_default_kernel_splits_activations_where_it_can():
    auto, exact = kernels.int8_matmul(), kernels.int8_matmul(False)
    q = torch.randint(-127, 128, (64, 128), dtype=torch.int8)
    x, s = torch.randn(2, 128), torch.rand(64)
    same = torch.equal(auto(x, q, s, None), exact(x, q, s, None))
    assert same == (kernels.int8_matmul(True) is None)
    x48 = torch.randn(2, 48)  # K % 64 != 0: fp32 activations everywhere
    q48 = torch.randint(-127, 128, (64, 48), dtype=torch.int8)
    assert torch.equal(auto(x48, q48, s, None), exact(x48, q48, s, None))


@needs_kernel
def test_int8_linear_uses_the_kernel_for_one_or_two_rows():
    torch.manual_seed(0)
    lin = torch.nn.Linear(256, 96, bias=True)
    q = Int8Linear.from_linear(lin)
    for rows in (1, 2, 5):  # 5 rows: PyTorch's kernel (bfloat16 activations)
        x = torch.randn(rows, 256)
        ref = torch.nn.functional.linear(x, q.dequantized(), q.bias)
        err = float((q(x) - ref).abs().max() / ref.abs().max())
        assert err < (1e-4 if rows <= 2 else 2e-2)
    assert q.product_2d() is None  # the direct call is for layers without a bias
    plain = Int8Linear.from_linear(torch.nn.Linear(256, 96, bias=False))
    product = plain.product_2d()
    for rows in (1, 2, 5):
        x = torch.randn(rows, 256)
        ref = torch.nn.functional.linear(x, plain.dequantized())
        assert float((product(x) - ref).abs().max() / ref.abs().max()) < (1e-4 if rows <= 2 else 2e-2)


def test_kernel_can_be_switched_off():
    code = ("import os; os.environ['WAVECRAFT_C_KERNELS'] = '0'; from wavecraft import kernels; "
            "print(kernels.int8_matmul() is None)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


@needs_kernel
def test_kernel_refuses_shapes_it_does_not_handle():
    with pytest.raises(ValueError, match="unsupported shapes"):
        kernel(torch.randn(5, 32), torch.zeros(8, 32, dtype=torch.int8), torch.ones(8), None)  # five rows
    assert not kernels.int8_matmul_fits(torch.zeros(8, 24, dtype=torch.int8))  # rows not a multiple of 16
    assert kernels.int8_matmul_fits(torch.zeros(8, 32, dtype=torch.int8))
