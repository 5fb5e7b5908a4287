"""The codec's fast inference paths against the plain ones.

- the matrix-multiply forms of convolutions equal `conv1d` / `conv_transpose1d` to float rounding;
- a 32 kHz-structured codec (widths from 32 to 512 channels, so every fast form runs, the C LSTM
  kernel included where this machine can build it) gives the
  same codes and the same audio (< 1e-5) with `set_fast(True)` and `set_fast(False)`;
- long inputs encoded / decoded piece by piece (bounded memory) equal the one-pass results;
- training (gradients on) never takes the fast forms.
"""
import pytest
import torch
import torch.nn.functional as F

from wavecraft.codec import Codec
from wavecraft.codec.config import CodecConfig
from wavecraft.codec.seanet import NormConv1d, NormConvTranspose1d, conv_taps, conv_transpose_overlap, conv_unfold


def _close(a, b, tol=1e-5):
    assert a.shape == b.shape
    assert (a - b).abs().max() <= tol * b.abs().max()


@pytest.mark.parametrize("cin,cout,k,dilation", [(16, 1, 7, 1), (8, 3, 3, 2), (4, 2, 1, 1)])
def test_conv_taps_equals_conv1d(cin, cout, k, dilation):
    x, w, b = torch.randn(2, cin, 50), torch.randn(cout, cin, k), torch.randn(cout)
    _close(conv_taps(x, w, b, dilation), F.conv1d(x, w, b, 1, 0, dilation))
    _close(conv_taps(x, w, None, dilation), F.conv1d(x, w, None, 1, 0, dilation))


@pytest.mark.parametrize("stride", [2, 4, 5])
def test_unfold_and_overlap_forms_equal_the_torch_convolutions(stride):
    x = torch.randn(2, 12, stride * 9)
    w, b = torch.randn(10, 12, 2 * stride), torch.randn(10)
    _close(conv_unfold(x, w, b, stride), F.conv1d(x, w, b, stride))
    wt = torch.randn(12, 6, 2 * stride)
    y = torch.randn(2, 12, 7)
    _close(conv_transpose_overlap(y, wt, stride), F.conv_transpose1d(y, wt, None, stride))


@pytest.fixture(scope="module")
def codec():
    torch.manual_seed(0)
    cfg = CodecConfig.preset("encodec_32khz", n_filters=32, dimension=32, lstm_layers=1)
    model = Codec(cfg).eval()
    with torch.no_grad():
        for layer in model.quantizer.layers:
            layer.embed.normal_()
    return model


def _uses_every_fast_form(codec):
    convs = [m for m in codec.modules() if isinstance(m, (NormConv1d, NormConvTranspose1d))]
    ins = {m.conv_weight().shape[1] for m in convs if m.stride > 1 and not m.transposed}
    return max(ins) >= 256 and any(m.conv_weight().shape[0] <= 8 for m in convs if not m.transposed)


def test_fast_codec_gives_the_plain_codes_and_audio(codec):
    assert _uses_every_fast_form(codec)
    wav = torch.randn(1, 1, 8000) * 0.3  # 0.25 s at 32 kHz: 13 frames
    with torch.inference_mode():
        codec.set_fast(False)
        codes, _ = codec.encode(wav)
        audio = codec.decode(codes)
        codec.set_fast(True)
        fast_codes, _ = codec.encode(wav)
        fast_audio = codec.decode(codes)
    assert torch.equal(fast_codes, codes) and codes.unique().numel() > 5
    _close(fast_audio, audio)


def test_long_inputs_run_in_pieces_and_match_one_pass(codec):
    codes = torch.randint(0, 2048, (2, 4, 23), generator=torch.Generator().manual_seed(1))
    wav = torch.randn(2, 1, 14500, generator=torch.Generator().manual_seed(2)) * 0.3  # 23 frames
    try:
        codec.stream_frames = None
        whole, whole_codes = codec.decode(codes), codec.encode(wav)[0]
        codec.stream_frames = 5  # 23 frames -> pieces of 5 through the streaming decoder / encoder
        pieces, piece_codes = codec.decode(codes), codec.encode(wav)[0]
        trimmed = codec.decode(codes, length=14500)  # 23 frames of 640 samples = 14720
    finally:
        codec.stream_frames = type(codec).stream_frames
    _close(pieces, whole)
    assert torch.equal(piece_codes, whole_codes) and whole_codes.shape == (2, 4, 23)
    assert trimmed.shape == (2, 1, 14500) and torch.equal(trimmed, pieces[..., :14500])


def test_training_uses_the_plain_convolutions(codec):
    conv = codec.decoder.layers[-1]  # 32 -> 1 channel: the fast form at inference
    x = torch.randn(1, conv.conv_weight().shape[1], 40, requires_grad=True)
    with torch.enable_grad():
        y = conv.conv(x)
    assert y.grad_fn is not None and "Convolution" in type(y.grad_fn).__name__
