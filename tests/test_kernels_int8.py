"""The C int8 decode kernel (wavecraft/kernels) against the dequantised fp32 product, and its fallbacks."""
import subprocess
import sys

import pytest
import torch

from wavecraft import kernels
from wavecraft.lm.quantize import Int8Linear

kernel = kernels.int8_matmul()
needs_kernel = pytest.mark.skipif(kernel is None, reason="no AVX-512 CPU or C compiler here")


@needs_kernel
@pytest.mark.parametrize("rows", [1, 2])
@pytest.mark.parametrize("shape", [(64, 48), (32, 7), (1024, 4098)])  # N % 4 != 0 exercises the row tail
def test_kernel_matches_the_dequantised_product(rows, shape):
    K, N = shape
    g = torch.Generator().manual_seed(0)
    q = torch.randint(-127, 128, (N, K), dtype=torch.int8, generator=g)
    scales = torch.rand(N, generator=g) + 0.1
    bias = torch.randn(N, generator=g)
    x = torch.randn(rows, K, generator=g)
    ref = (x.double() @ q.double().t()) * scales.double()
    out = kernel(x, q, scales, None)
    assert out.shape == (rows, N) and out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-4 * float(ref.abs().max()))
    torch.testing.assert_close(kernel(x, q, scales, bias).double(), ref + bias.double(), rtol=1e-5,
                               atol=1e-4 * float(ref.abs().max()))


@needs_kernel
def test_int8_linear_uses_the_kernel_for_one_or_two_rows_and_keeps_fp32_activations():
    torch.manual_seed(0)
    lin = torch.nn.Linear(256, 96, bias=True)
    q = Int8Linear.from_linear(lin)
    for rows in (1, 2, 5):  # 5 rows: PyTorch's kernel (bfloat16 activations)
        x = torch.randn(rows, 256)
        ref = torch.nn.functional.linear(x, q.dequantized(), q.bias)
        err = float((q(x) - ref).abs().max() / ref.abs().max())
        assert err < (1e-5 if rows <= 2 else 2e-2)
    assert q.product_2d() is None  # the direct call is for layers without a bias
    plain = Int8Linear.from_linear(torch.nn.Linear(256, 96, bias=False))
    product = plain.product_2d()
    for rows in (1, 2, 5):
        x = torch.randn(rows, 256)
        ref = torch.nn.functional.linear(x, plain.dequantized())
        assert float((product(x) - ref).abs().max() / ref.abs().max()) < (1e-5 if rows <= 2 else 2e-2)


def test_kernel_can_be_switched_off():
    code = ("import os; os.environ['WAVECRAFT_C_KERNELS'] = '0'; from wavecraft import kernels; "
            "print(kernels.int8_matmul() is None)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


@needs_kernel
def test_kernel_refuses_shapes_it_does_not_handle():
    with pytest.raises(ValueError, match="unsupported shapes"):
        kernel(torch.randn(3, 32), torch.zeros(8, 32, dtype=torch.int8), torch.ones(8), None)
    assert not kernels.int8_matmul_fits(torch.zeros(8, 24, dtype=torch.int8))  # rows not a multiple of 16
    assert kernels.int8_matmul_fits(torch.zeros(8, 32, dtype=torch.int8))
