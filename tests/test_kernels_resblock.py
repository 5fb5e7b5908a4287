"""The fused residual-block kernel (wavecraft/kernels/resblock.c) and the codec's ResBlock and
streaming state that use it, against the plain convolutions."""
import pytest
import torch
import torch.nn.functional as F

from wavecraft import kernels
from wavecraft.codec import layout, seanet, stream_states
from wavecraft.codec.config import CodecConfig

kernel = kernels.resblock()
needs_kernel = pytest.mark.skipif(kernel is None, reason="no AVX-512 CPU or C compiler here")


def _cl(x):
    return x.transpose(1, 2).contiguous().transpose(1, 2)


def _weights(C, H, k, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(k, C, H, generator=g) / (k * C) ** 0.5, torch.randn(H, generator=g) * 0.3,
            torch.randn(H, C, generator=g) / H ** 0.5, torch.randn(C, generator=g) * 0.3)


def _reference(x, w1, b1, w2, b2, skip):
    h = F.conv1d(F.elu(x.double()), w1.double().permute(2, 1, 0), b1.double())
    y = F.conv1d(F.elu(h), w2.double().t()[:, :, None], b2.double())
    return (x.double()[..., skip : skip + y.shape[-1]] + y).float()


@needs_kernel
@pytest.mark.parametrize("C,H,k,skip", [(64, 32, 3, 1), (32, 16, 3, 2), (48, 64, 1, 0), (16, 48, 5, 4), (128, 64, 3, 0)])
@pytest.mark.parametrize("length", [5, 47, 48, 49, 200])  # one window at k = 5; around the kernel's 48-row tiles
@pytest.mark.parametrize("batch", [1, 2])
def test_kernel_matches_the_convolutions(C, H, k, skip, length, batch):
    w1, b1, w2, b2 = _weights(C, H, k)
    x = _cl(torch.randn(batch, C, length, generator=torch.Generator().manual_seed(length)) * 2)
    y = kernel(x, w1, b1, w2, b2, skip)
    assert y.shape == (batch, C, length - k + 1) and layout.is_channels_last(y)
    ref = _reference(x, w1, b1, w2, b2, skip)
    assert (y - ref).abs().max() <= 2e-6 * ref.abs().max()


@needs_kernel
@pytest.mark.parametrize("head_rows", [1, 2, 30, 60])
def test_kernel_reads_the_kept_head_as_if_joined(head_rows):
    w1, b1, w2, b2 = _weights(32, 32, 3)
    whole = _cl(torch.randn(2, 32, 100, generator=torch.Generator().manual_seed(3)))
    head, body = _cl(whole[..., :head_rows]), whole[..., head_rows:]
    assert torch.equal(kernel(body, w1, b1, w2, b2, 1, head=head), kernel(whole, w1, b1, w2, b2, 1))


@needs_kernel
def test_kernel_refuses_what_it_cannot_address():
    w1, b1, w2, b2 = _weights(24, 16, 3)  # 24 channels: not a multiple of 16
    with pytest.raises(ValueError, match="multiples of 16"):
        kernel(_cl(torch.randn(1, 24, 10)), w1, b1, w2, b2, 1)
    w1, b1, w2, b2 = _weights(32, 16, 3)
    with pytest.raises(ValueError, match="channels-last"):
        kernel(torch.randn(1, 32, 10), w1, b1, w2, b2, 1)  # [B, C, T] memory, not channels last
    with pytest.raises(ValueError, match="w2"):
        kernel(_cl(torch.randn(1, 32, 10)), w1, b1, w2[:8], b2, 1)  # hidden sizes disagree


def _block(dim, **kw):
    torch.manual_seed(0)
    cfg = CodecConfig(**{**dict(n_filters=dim, true_skip=True), **kw})
    return seanet.ResBlock(dim, cfg, 1, cfg.norm).eval()


def _count_calls(monkeypatch):
    calls = []

    def counted():
        real = kernels.resblock()
        return None if real is None else (lambda *a, **k: calls.append(1) or real(*a, **k))

    monkeypatch.setattr(seanet, "resblock", counted)
    monkeypatch.setattr(stream_states, "resblock", counted)
    return calls


@needs_kernel
@pytest.mark.parametrize("pad_mode,causal", [("reflect", False), ("constant", False), ("reflect", True)])
def test_fused_block_and_its_stream_equal_the_plain_block(pad_mode, causal, monkeypatch):
    block = _block(64, pad_mode=pad_mode, causal=causal)
    x = torch.randn(2, 64, 301, generator=torch.Generator().manual_seed(5))
    calls = _count_calls(monkeypatch)
    with torch.inference_mode():
        for m in block.modules():
            if hasattr(m, "fast"):
                m.fast = False
        plain = block(x)
        for m in block.modules():
            if hasattr(m, "fast"):
                m.fast = True
        fused = block(_cl(x))
        assert calls and (fused - plain).abs().max() <= 2e-6 * plain.abs().max()
        for sizes in ([1], [2], [7, 1, 40], [150]):
            state = stream_states._make_state(block)
            assert isinstance(state, stream_states._FusedResBlockState)
            out, start, i = [], 0, 0
            while start < x.shape[-1]:
                n = sizes[i % len(sizes)]
                out.append(state.step(_cl(x[..., start : start + n])))
                start, i = start + n, i + 1
            out.append(state.flush())
            streamed = torch.cat([o for o in out if o is not None], dim=-1)
            assert streamed.shape == plain.shape and (streamed - fused).abs().max() <= 1e-6 * plain.abs().max(), sizes


def test_blocks_the_kernel_does_not_take_keep_the_layers(monkeypatch):
    calls = _count_calls(monkeypatch)
    x = _cl(torch.randn(1, 24, 50))
    with torch.inference_mode():
        narrow = _block(24)  # 12 hidden channels
        assert torch.allclose(narrow(x), narrow.shortcut(x) + narrow.block[3](narrow.block[2](narrow.block[1](narrow.block[0](x)))),
                              atol=1e-6)
        shortcut = _block(32, true_skip=False)  # a 1x1 shortcut: not an identity
        assert not shortcut.streams_fused()
        assert not isinstance(stream_states._make_state(shortcut), stream_states._FusedResBlockState)
        wide = _block(512)  # 2 MB of weights: the BLAS path
        assert wide._fused_weights(_cl(torch.randn(1, 512, 8))) is None
    with torch.enable_grad():  # training: never the kernel
        y = _block(32)(_cl(torch.randn(1, 32, 20, requires_grad=True)))
        assert y.grad_fn is not None
    assert not calls

