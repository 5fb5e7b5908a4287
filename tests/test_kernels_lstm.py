"""The C LSTM kernel (wavecraft/kernels/lstm.c) and the codec's LSTMBlock that uses it, against nn.LSTM."""
import pytest
import torch

from wavecraft import kernels
from wavecraft.codec.seanet import LSTMBlock

kernel = kernels.lstm_layer()
needs_kernel = pytest.mark.skipif(kernel is None, reason="no AVX-512 CPU or C compiler here")


def _lstm(dim: int, layers: int, seed: int = 0) -> torch.nn.LSTM:
    torch.manual_seed(seed)
    lstm = torch.nn.LSTM(dim, dim, layers)
    with torch.no_grad():  # larger weights than the default init: gates reach saturation both ways
        for p in lstm.parameters():
            p.mul_(3)
    return lstm.eval()


@needs_kernel
@pytest.mark.parametrize("batch", [1, 2, 3, 4])
@pytest.mark.parametrize("dim", [16, 48])
def test_kernel_layer_matches_torch(batch, dim):
    lstm = _lstm(dim, 1)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(37, batch, dim, generator=g)
    h0, c0 = torch.randn(1, batch, dim, generator=g), torch.randn(1, batch, dim, generator=g)
    with torch.no_grad():
        ref, (h_ref, c_ref) = lstm(x, (h0, c0))
        gates = torch.addmm(lstm.bias_ih_l0 + lstm.bias_hh_l0, x.view(-1, dim), lstm.weight_ih_l0.t()).view(37, batch, -1)
        c = c0[0].clone()
        out = kernel(gates, lstm.weight_hh_l0.contiguous(), h0[0].contiguous(), c)
    torch.testing.assert_close(out, ref, rtol=0, atol=2e-6)
    torch.testing.assert_close(c, c_ref[0], rtol=0, atol=2e-6)  # the last cell state, written in place
    torch.testing.assert_close(out[-1], h_ref[0], rtol=0, atol=2e-6)


@needs_kernel
@pytest.mark.parametrize("dim", [64, 96, 128])
def test_kernel_result_does_not_depend_on_the_threads_split(dim):
    """Pairs of threads share their blocks dynamically (even steps meet where their speeds put
    them), an odd thread count splits statically: every way, each unit's sums are the same."""
    lstm = _lstm(dim, 1, seed=4)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(41, 2, dim, generator=g)
    h0, c0 = torch.randn(2, dim, generator=g), torch.randn(2, dim, generator=g)
    threads = torch.get_num_threads()
    results = []
    try:
        with torch.no_grad():
            gates = torch.addmm(lstm.bias_ih_l0 + lstm.bias_hh_l0, x.view(-1, dim), lstm.weight_ih_l0.t()).view(41, 2, -1)
            for n in (1, 2, 3, 4):
                torch.set_num_threads(n)
                for _ in range(3):  # a different meeting point each time, the same numbers
                    c = c0.clone()
                    results.append((kernel(gates, lstm.weight_hh_l0.contiguous(), h0, c), c))
            ref, (_, c_ref) = lstm(x, (h0[None], c0[None]))
    finally:
        torch.set_num_threads(threads)
    for out, c in results:
        assert torch.equal(out, results[0][0]) and torch.equal(c, results[0][1])
    torch.testing.assert_close(results[0][0], ref, rtol=0, atol=2e-6)
    torch.testing.assert_close(results[0][1], c_ref[0], rtol=0, atol=2e-6)


@needs_kernel
@pytest.mark.parametrize("steps", [1, 5, 9])
def test_block_run_equals_nn_lstm_with_and_without_state(steps):
    block = LSTMBlock(32, 2)
    block.lstm = _lstm(32, 2, seed=3)
    g = torch.Generator().manual_seed(2)
    seq = torch.randn(steps, 2, 32, generator=g)
    state = (torch.randn(2, 2, 32, generator=g), torch.randn(2, 2, 32, generator=g))
    with torch.no_grad():
        for given in (None, state):
            y, (h, c) = block.run(seq, given)
            y_ref, (h_ref, c_ref) = block.lstm(seq, given)
            torch.testing.assert_close(y, y_ref, rtol=0, atol=2e-6)
            torch.testing.assert_close(h, h_ref, rtol=0, atol=2e-6)
            torch.testing.assert_close(c, c_ref, rtol=0, atol=2e-6)
        # the state can be carried from one piece to the next, as streaming does
        y1, st = block.run(seq[:4], state)
        y2, _ = block.run(seq[4:], st)
        torch.testing.assert_close(torch.cat([y1, y2]), block.lstm(seq, state)[0], rtol=0, atol=2e-6)


@needs_kernel
def test_kernel_keeps_nan_and_saturates_cleanly():
    lstm = _lstm(16, 1)
    x = torch.randn(5, 1, 16) * 1e4  # far past the exponential's range: gates at exactly 0 / 1
    with torch.no_grad():
        gates = torch.addmm(lstm.bias_ih_l0 + lstm.bias_hh_l0, x.view(-1, 16), lstm.weight_ih_l0.t()).view(5, 1, -1)
        out = kernel(gates, lstm.weight_hh_l0.contiguous(), torch.zeros(1, 16), torch.zeros(1, 16))
        torch.testing.assert_close(out, lstm(x)[0], rtol=0, atol=1e-6)
        gates[2, 0, 3] = float("nan")
        out = kernel(gates, lstm.weight_hh_l0.contiguous(), torch.zeros(1, 16), torch.zeros(1, 16))
    assert torch.isnan(out[2, 0, 3]) and not torch.isnan(out[:2]).any()


def test_block_falls_back_to_nn_lstm_where_the_kernel_does_not_apply():
    block = LSTMBlock(24, 1)  # 24 units: not a multiple of 16
    seq = torch.randn(6, 5, 24)  # and batch 5
    with torch.no_grad():
        torch.testing.assert_close(block.run(seq)[0], block.lstm(seq)[0], rtol=0, atol=0)
    wide = LSTMBlock(32, 1)
    seq = torch.randn(6, 5, 32, requires_grad=True)
    y, _ = wide.run(seq)  # gradients on (training): nn.LSTM, so they flow
    y.sum().backward()
    assert seq.grad is not None and wide.lstm.weight_hh_l0.grad is not None


@needs_kernel
def test_kernel_refuses_what_it_cannot_take():
    w = torch.zeros(64, 16)
    with pytest.raises(ValueError, match="unsupported batch"):
        kernel(torch.zeros(3, 5, 64), w, torch.zeros(5, 16), torch.zeros(5, 16))
    with pytest.raises(ValueError, match="expects contiguous CPU float32"):
        kernel(torch.zeros(3, 1, 64, dtype=torch.float64), w, torch.zeros(1, 16), torch.zeros(1, 16))
    with pytest.raises(ValueError, match="expects contiguous CPU float32"):
        kernel(torch.zeros(3, 1, 64), w.t(), torch.zeros(1, 16), torch.zeros(1, 16))
