"""The codec's fast inference paths against the plain ones.

- the channels-last forms of convolutions (codec/layout.py) equal `conv1d` / `conv_transpose1d`
  to float rounding, for every shape the codec uses, from either layout, and their padding and
  joining keep the layout;
- a 32 kHz-structured codec (widths from 32 to 512 channels, so every form runs, the C LSTM and
  ELU kernels included where this machine can build them) gives the same codes and the same
  audio (< 1e-5) with `set_fast(True)` and `set_fast(False)`;
- long inputs encoded / decoded piece by piece (bounded memory) equal the one-pass results;
- training (gradients on) never takes the fast forms.
"""
import pytest
import torch
import torch.nn.functional as F

from wavecraft.codec import Codec, layout
from wavecraft.codec.config import CodecConfig


def _close(a, b, tol=1e-5):
    assert a.shape == b.shape
    assert (a - b).abs().max() <= tol * b.abs().max()


def _cl(x):
    return x.transpose(1, 2).contiguous().transpose(1, 2)


# (cin, cout, k, stride, dilation): 1x1, one input channel, one output channel, kernel 2s
# downsampling, unstrided kernels (a product per tap) with dilation, the rest (oneDNN NHWC)
@pytest.mark.parametrize("cin,cout,k,stride,dilation", [
    (16, 24, 1, 1, 1), (1, 16, 7, 1, 1), (1, 8, 3, 2, 2), (16, 1, 7, 1, 1), (12, 1, 3, 1, 3),
    (12, 10, 8, 4, 1), (12, 10, 10, 5, 1), (16, 8, 3, 1, 1), (16, 8, 3, 1, 2), (8, 6, 5, 3, 1)])
@pytest.mark.parametrize("batch", [1, 3])
def test_channels_last_convolutions_equal_conv1d(cin, cout, k, stride, dilation, batch):
    g = torch.Generator().manual_seed(k * 10 + cin)
    x, w, b = torch.randn(batch, cin, 61, generator=g), torch.randn(cout, cin, k, generator=g), torch.randn(cout, generator=g)
    ref = F.conv1d(x, w, b, stride, 0, dilation)
    derived = layout.DerivedWeights()
    for given in (x, _cl(x), _cl(torch.randn(batch, cin, 70))[..., 4:65].copy_(x)):  # ncw, cl, a cl slice
        out = layout.conv1d(given, w, b, stride, dilation, derived)
        assert layout.is_channels_last(out)
        _close(out, ref)
    _close(layout.conv1d(x, w, None, stride, dilation, derived), F.conv1d(x, w, None, stride, 0, dilation))
    w.mul_(2)  # the derived weight forms follow an in-place change of the weight
    _close(layout.conv1d(x, w, b, stride, dilation, derived), F.conv1d(x, w, b, stride, 0, dilation))


@pytest.mark.parametrize("stride,frames", [(4, 1), (5, 7), (8, 30)])
@pytest.mark.parametrize("batch", [1, 2])
def test_channels_last_transposed_convolution_and_its_carry(stride, frames, batch):
    g = torch.Generator().manual_seed(stride)
    x = torch.randn(batch, 6, frames, generator=g)
    w, b = torch.randn(6, 3, 2 * stride, generator=g), torch.randn(3, generator=g)
    derived = layout.DerivedWeights()
    ref = F.conv_transpose1d(x, w, b, stride)
    out = layout.conv_transpose1d(x, w, b, stride, derived)
    assert layout.is_channels_last(out)
    _close(out, ref)
    _close(layout.conv_transpose1d(_cl(x), w, None, stride, derived), F.conv_transpose1d(x, w, None, stride))
    if frames > 1:  # two pieces, the first one's tail (without bias) carried into the second
        cut = frames // 2
        first = layout.conv_transpose1d(x[..., :cut], w, b, stride, derived, bias_on_tail=False)
        second = layout.conv_transpose1d(x[..., cut:], w, b, stride, derived, carry=first[..., cut * stride :],
                                         bias_on_tail=False)
        joined = torch.cat([first[..., : cut * stride], second[..., :-stride], second[..., -stride:] + b[:, None]], -1)
        _close(joined, ref)


@pytest.mark.parametrize("mode", ["reflect", "constant", "replicate"])
def test_channels_last_padding_and_joining(mode):
    x = _cl(torch.randn(2, 5, 9))
    padded = layout.pad(x, 3, 2, mode)
    assert layout.is_channels_last(padded)
    assert torch.equal(padded, F.pad(x, (3, 2), mode=mode) if mode != "constant" else F.pad(x, (3, 2)))
    assert layout.pad(x[..., :2], 3, 0, "reflect") is None  # shorter than the pad: pad1d's general code
    joined = layout.join([x[..., :4], None, x[..., 4:4], x[..., 4:]])
    assert layout.is_channels_last(joined) and torch.equal(joined, x)


@pytest.fixture(scope="module")
def codec():
    torch.manual_seed(0)
    cfg = CodecConfig.preset("encodec_32khz", n_filters=32, dimension=32, lstm_layers=1)
    model = Codec(cfg).eval()
    with torch.no_grad():
        for layer in model.quantizer.layers:
            layer.embed.normal_()
    return model


def test_fast_codec_gives_the_plain_codes_and_audio(codec):
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
    conv = codec.decoder.layers[-1]  # 32 -> 1 channel: a channels-last form at inference
    x = torch.randn(1, conv.conv_weight().shape[1], 40, requires_grad=True)
    with torch.enable_grad():
        y = conv.conv(x)
    assert y.grad_fn is not None and "Convolution" in type(y.grad_fn).__name__
