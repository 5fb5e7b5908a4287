"""Streaming decode/encode give exactly the one-pass result, whatever the piece sizes."""
from __future__ import annotations

import pytest
import torch

from wavecraft.codec import Codec, CodecConfig, stream_states, streaming
from wavecraft.errors import WavecraftError

# Released structures (ratios, kernels, LSTM, residual blocks) with very narrow layers.
_SHAPES = {
    "causal-reflect (EnCodec 24 kHz)": dict(causal=True, pad_mode="reflect"),
    "noncausal-constant (MusicGen 32 kHz)": dict(causal=False, pad_mode="constant", true_skip=True, ratios=(8, 5, 4, 4)),
    "noncausal-reflect": dict(causal=False, pad_mode="reflect"),
    "causal-trim-half": dict(causal=True, pad_mode="constant", trim_right_ratio=0.5),
    # wide enough (32-256 channels) for the fused residual-block kernel in most blocks
    "noncausal-reflect, fused residual blocks": dict(causal=False, pad_mode="reflect", true_skip=True, n_filters=16,
                                                     dimension=16),
}


def _codec(**kw) -> Codec:
    torch.manual_seed(0)
    base = dict(sample_rate=24000, dimension=8, n_filters=2, ratios=(8, 5, 4, 2), bins=64, n_q=4)
    codec = Codec(CodecConfig(**{**base, **kw})).eval()
    for layer in codec.quantizer.layers:
        layer.embed.normal_()
    return codec


def _pieces(total: int, sizes: list[int]):
    start, i = 0, 0
    while start < total:
        n = sizes[i % len(sizes)]
        yield start, min(start + n, total)
        start, i = start + n, i + 1


# sub-pieces of a few samples through the 16-256 channels of the fused shape would be slow; the
# narrow shapes cover them
@pytest.mark.parametrize("shape,sub_piece_floats", [(shape, floats) for shape in _SHAPES for floats in (None, 37)
                                                    if floats is None or "fused" not in shape])
def test_stream_equals_one_pass(shape: str, sub_piece_floats: int | None, monkeypatch: pytest.MonkeyPatch) -> None:
    if sub_piece_floats is not None:  # the audio-side layers over slices of a few samples
        monkeypatch.setattr(streaming, "SUB_PIECE_FLOATS", sub_piece_floats)
    codec = _codec(**_SHAPES[shape])
    wav = torch.randn(2, 1, codec.hop_length * 19 + 17)
    codes, _ = codec.encode(wav)
    whole = codec.decode(codes)
    for sizes in ([1], [2], [3], [8], [5, 1, 11, 2], [100]):
        decoder = codec.decode_stream()
        out = [decoder.step(codes[..., a:b]) for a, b in _pieces(codes.shape[-1], sizes)] + [decoder.flush()]
        audio = torch.cat(out, dim=-1)
        assert audio.shape == whole.shape, sizes
        torch.testing.assert_close(audio, whole, atol=1e-5, rtol=1e-4)
        encoder = codec.encode_stream()
        step = sizes[0] * 97  # sample pieces that do not line up with frames
        streamed = torch.cat([encoder.step(wav[..., a:b]) for a, b in _pieces(wav.shape[-1], [step])] + [encoder.flush()], -1)
        assert torch.equal(streamed, codes), sizes


def test_sub_pieces_hold_the_wide_cheap_layers(monkeypatch: pytest.MonkeyPatch) -> None:
    # MusicGen's 32 kHz structure, 8x narrower, with the budgets scaled to match
    monkeypatch.setattr(streaming, "SUB_PIECE_WEIGHTS", 512 * 1024 // 64)
    monkeypatch.setattr(streaming, "SUB_PIECE_FLOATS", 1000)
    codec = _codec(sample_rate=32000, n_filters=8, ratios=(8, 5, 4, 4), causal=False, pad_mode="constant",
                   true_skip=True, lstm_layers=2)
    for chain, first in ((codec.encode_stream().chain, True), (codec.decode_stream().chain, False)):
        sub = chain[0] if first else chain[-1]
        assert isinstance(sub, streaming._SubPieces)
        inner = sub.chain
        weights = sum(p.numel() for state in inner for p in _state_modules(state) for p in p.parameters())
        assert 0 < weights <= streaming.SUB_PIECE_WEIGHTS
        assert not any(isinstance(s, stream_states._LSTMState) for s in inner)
        # the next deeper layer would not have fitted
        outer = chain[1] if first else chain[-2]
        extra = sum(p.numel() for m in _state_modules(outer) for p in m.parameters())
        assert weights + extra > streaming.SUB_PIECE_WEIGHTS
    # widest activation: 8 channels at the input rate (encoder), 8 at 16x the input rate (decoder)
    assert codec.encode_stream().chain[0].length == 1000 // 8
    assert codec.decode_stream().chain[-1].length == 1000 // (8 * 16)


def _state_modules(state) -> list[torch.nn.Module]:
    for name in ("block", "conv", "module"):  # a fused residual block's state has both: the block holds all
        if hasattr(state, name):
            found = [getattr(state, name)]
            return found + ([state.shortcut] if hasattr(state, "shortcut") else [])
    if isinstance(state, stream_states._ResBlockState):
        return [m for s in state.chain for m in _state_modules(s)]
    return []


@pytest.mark.parametrize("run_frames", [1, 7, 1500])
def test_offline_pieces_gather_the_lstm_and_equal_one_pass(run_frames: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streaming, "LSTM_RUN_FRAMES", run_frames)
    codec = _codec(**_SHAPES["noncausal-constant (MusicGen 32 kHz)"])
    wav = torch.randn(2, 1, codec.hop_length * 23 + 5)
    codec.stream_frames = None  # one pass
    codes = codec.encode(wav)[0]
    whole = codec.decode(codes)
    codec.stream_frames = 4  # offline pieces: 4 frames in, the LSTM over `run_frames` at a time
    assert torch.equal(codec.encode(wav)[0], codes)
    torch.testing.assert_close(codec.decode(codes), whole, atol=1e-5, rtol=1e-4)
    for offline in (streaming.StreamingEncoder(codec, offline=True), streaming.StreamingDecoder(codec, offline=True)):
        assert any(isinstance(state, streaming._Gather) for state in offline.chain)
    live = codec.decode_stream()  # a live stream never waits for a run of frames
    assert not any(isinstance(state, streaming._Gather) for state in live.chain)
    assert live.step(codes[..., :10]).shape[-1] > 0


def test_causal_stream_emits_as_it_goes() -> None:
    codec = _codec(causal=True, pad_mode="constant")
    decoder = codec.decode_stream()
    codes = torch.randint(0, 64, (1, 4, 6))
    emitted = [decoder.step(codes[..., i : i + 1]).shape[-1] for i in range(6)]
    assert all(n > 0 for n in emitted)  # no look-ahead: every frame yields audio right away
    assert sum(emitted) + decoder.flush().shape[-1] == 6 * codec.hop_length


def test_short_stream_and_misuse() -> None:
    codec = _codec(causal=True, pad_mode="reflect")
    codes = torch.randint(0, 64, (1, 4, 2))  # shorter than the first convolution's padding
    decoder = codec.decode_stream()
    audio = torch.cat([decoder.step(codes[..., :1]), decoder.step(codes[..., 1:]), decoder.flush()], -1)
    torch.testing.assert_close(audio, codec.decode(codes), atol=1e-5, rtol=1e-4)
    with pytest.raises(WavecraftError, match="was flushed"):
        decoder.step(codes)
    decoder = codec.decode_stream()
    decoder.step(codes)
    with pytest.raises(WavecraftError, match="batch size changed from 1 to 2"):
        decoder.step(codes.repeat(2, 1, 1))


def test_group_norm_and_chunked_models_refuse_to_stream() -> None:
    with pytest.raises(WavecraftError, match="group-norm"):
        _codec(causal=False, norm="time_group_norm").decode_stream()
    chunked = _codec(causal=False, renormalize=True, chunk_length_s=0.1, overlap=0.01)
    with pytest.raises(WavecraftError, match="overlapping chunks"):
        chunked.decode_stream(scale=torch.ones(1, 1))
    with pytest.raises(WavecraftError, match="cannot encode in a stream"):
        chunked.encode_stream()
