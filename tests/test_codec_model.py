"""The Codec API: shapes, bitrate control, chunk layout, validation messages, identity hash,
weight-norm folding, and the training forward."""
from __future__ import annotations

import math

import pytest
import torch

from wavecraft.codec import Codec, CodecConfig
from wavecraft.codec import model as model_module
from wavecraft.errors import ConfigError, WavecraftError


def _codec(seed: int = 0, **kw) -> Codec:
    torch.manual_seed(seed)
    codec = Codec(CodecConfig.preset("tiny", **kw)).eval()
    for layer in codec.quantizer.layers:
        layer.embed.normal_()
    return codec


def test_shapes_and_properties() -> None:
    codec = _codec()
    assert (codec.sample_rate, codec.channels, codec.hop_length, codec.frame_rate) == (8000, 1, 8, 1000)
    assert (codec.cardinality, codec.total_codebooks, codec.num_codebooks) == (64, 4, 4)
    wav = torch.randn(3, 1, 101)
    codes, scale = codec.encode(wav)
    assert scale is None and codes.dtype == torch.long and codes.shape == (3, 4, math.ceil(101 / 8))
    assert codec.num_frames(101) == codes.shape[-1]
    assert codec.decode(codes).shape == (3, 1, 13 * 8)
    assert codec.decode(codes, length=101).shape == (3, 1, 101)
    # Batch items are independent.
    assert torch.equal(codec.encode(wav[1:2])[0], codes[1:2])


def test_bitrate_control_and_rvq_prefix() -> None:
    codec = _codec()
    wav = torch.randn(1, 1, 200)
    full, _ = codec.encode(wav)
    per_q = math.log2(64) * 1000 / 1000  # 6 kbps per codebook
    assert codec.bandwidth == pytest.approx(4 * per_q)
    codec.set_bandwidth(13.0)  # floor(13 / 6) = 2 codebooks
    assert codec.num_codebooks == 2 and codec.bandwidth == pytest.approx(12.0)
    two, _ = codec.encode(wav)
    assert torch.equal(two, full[:, :2])  # residual quantization: fewer codebooks = a prefix
    assert codec.decode(two).shape == codec.decode(full).shape
    codec.set_num_codebooks(3)
    assert codec.encode(wav)[0].shape[1] == 3
    assert codec.available_bandwidths() == [6.0, 12.0, 18.0, 24.0]
    with pytest.raises(WavecraftError, match=r"bandwidth 3 kbps is out of range for codec codec: it supports 6 to 24 kbps"):
        codec.set_bandwidth(3)
    with pytest.raises(WavecraftError, match="from 1 to 4"):
        codec.set_num_codebooks(5)
    with pytest.raises(WavecraftError, match="from 1 to 4"):
        codec.set_num_codebooks(2.0)


def test_input_validation_messages() -> None:
    codec = _codec()
    cases = [
        (torch.randn(1, 100), r"shaped \[B, C, T\], got \(1, 100\) \(add the batch axis with wav\[None\]\)"),
        (torch.randn(1, 2, 100), r"expects 1 channel\(s\), got 2"),
        (torch.zeros(1, 1, 100, dtype=torch.int16), "expects float audio"),
        (torch.full((1, 1, 10), float("nan")), "NaN or infinite"),
        (torch.zeros(1, 1, 0), "empty audio"),
        ([0.0] * 10, "expects a torch.Tensor"),
    ]
    for wav, message in cases:
        with pytest.raises(WavecraftError, match=message):
            codec.encode(wav)
    codes = torch.zeros(1, 4, 5, dtype=torch.long)
    for bad, message in [
        (codes.float(), "integer codes"),
        (codes[0], r"shaped \[B, K, F\]"),
        (torch.zeros(1, 5, 5, dtype=torch.long), r"1 <= K <= 4"),
        (codes + 64, r"must lie in \[0, 63\], found 64..64"),
    ]:
        with pytest.raises(WavecraftError, match=message):
            codec.decode(bad)
    with pytest.raises(WavecraftError, match="does not renormalise: decode takes scale=None"):
        codec.decode(codes, torch.ones(1, 1))
    with pytest.raises(WavecraftError, match="5 code frames do not match length=100"):
        codec.decode(codes, length=100)
    # float64 input is accepted and cast.
    assert codec.encode(torch.randn(1, 1, 50, dtype=torch.float64))[0].shape == (1, 4, 7)


def test_renormalised_chunked_layout_and_round_trip(monkeypatch) -> None:
    # 100-sample chunks every 60 samples: some inputs end with two partial chunks.
    codec = _codec(renormalize=True, chunk_length_s=100 / 8000, overlap=0.4, causal=False)
    assert (codec.config.chunk_length, codec.config.chunk_stride) == (100, 60)
    layout = codec.chunk_layout(230)
    assert [(c.offset, c.samples, c.frames) for c in layout] == [(0, 100, 13), (60, 100, 13), (120, 100, 13), (180, 50, 7)]
    assert [c.frame_offset for c in layout] == [0, 13, 26, 39]
    wav = torch.randn(2, 1, 250)
    wav[1] *= 10
    codes, scale = codec.encode(wav[..., :230])
    assert codes.shape == (2, 4, 46) and scale.shape == (2, 4)
    # Each chunk is encoded alone, with its own scale (a 100-sample input is itself cut at 0 and 60).
    chunk_codes, chunk_scale = codec.encode(wav[..., 60:160])
    assert torch.equal(codes[..., 13:26], chunk_codes[..., :13]) and torch.allclose(scale[:, 1], chunk_scale[:, 0])
    audio = codec.decode(codes, scale)  # layout inferred: every chunk full but the last
    assert audio.shape == (2, 1, 180 + 7 * 8)
    torch.testing.assert_close(codec.decode(codes, scale, length=230), audio[..., :230])
    # 250 samples -> chunks at 0, 60, 120, 180 (70 samples), 240 (10): two partial chunks; the
    # layout then needs the length, and says so when it is missing.
    codes2, scale2 = codec.encode(wav)
    assert codec.decode(codes2, scale2, length=250).shape == (2, 1, 250)
    with pytest.raises(WavecraftError, match="pass length="):
        codec.decode(codes2, scale2)
    # Long inputs go through the networks a few chunks at a time; grouping changes nothing.
    long = torch.randn(2, 1, 1300)
    grouped, grouped_scale = codec.encode(long)
    grouped_audio = codec.decode(grouped, grouped_scale, length=1300)
    monkeypatch.setattr(model_module, "_MAX_CHUNK_ROWS", 1000)
    assert torch.equal(codec.encode(long)[0], grouped)
    torch.testing.assert_close(codec.decode(grouped, grouped_scale, length=1300), grouped_audio)
    monkeypatch.undo()
    with pytest.raises(WavecraftError, match=r"needs the scale \[B, 4\] returned by encode"):
        codec.decode(codes)
    with pytest.raises(WavecraftError, match=r"scale must be shaped \[B, N\] = \[2, 4\], got \(2, 3\)"):
        codec.decode(codes, scale[:, :3], length=230)


def test_weights_hash_is_stable_and_sensitive(tmp_path) -> None:
    a, b = _codec(seed=1), _codec(seed=1)
    assert a.weights_hash() == b.weights_hash() and len(a.weights_hash()) == 64
    b.quantizer.layers[0].cluster_size += 5  # training statistics do not change identity
    b._hash = None
    assert b.weights_hash() == a.weights_hash()
    c = _codec(seed=1)
    with torch.no_grad():
        c.decoder.layers[0].bias[0] += 1e-3
    assert c.weights_hash() != a.weights_hash()


def test_folded_weights_follow_parameter_updates() -> None:
    a, b = _codec(seed=1), _codec(seed=2)
    codes = torch.randint(0, 64, (1, 4, 6))
    with torch.inference_mode():
        out_a = a.decode(codes)  # fills a's folded-weight cache inside inference mode
    a.load_state_dict(b.state_dict())
    torch.testing.assert_close(a.decode(codes), b.decode(codes))
    assert not torch.allclose(a.decode(codes), out_a)
    # The cached weights are ordinary tensors: a training pass afterwards still backpropagates.
    a.train()
    a(torch.randn(1, 1, 40)).audio.sum().backward()
    assert a.decoder.layers[0].weight_v.grad is not None


def test_training_forward_updates_and_backpropagates() -> None:
    torch.manual_seed(0)
    codec = Codec(CodecConfig.preset("tiny", q_dropout=True, kmeans_iters=3)).train()
    wav = torch.randn(2, 1, 203)
    out = codec(wav)
    assert out.audio.shape == wav.shape and out.codes.shape[0] == 2 and 1 <= out.codes.shape[1] <= 4
    assert out.bandwidth == pytest.approx(out.codes.shape[1] * 6.0)
    assert all(bool(layer.inited) for layer in codec.quantizer.layers[: out.codes.shape[1]])
    assert out.penalty.item() > 0
    ((out.audio - wav).pow(2).mean() + out.penalty).backward()
    first = codec.encoder.layers[0]
    assert first.weight_g.grad is not None and first.weight_v.grad.abs().sum() > 0
    assert codec.decoder.layers[-1].weight_v.grad.abs().sum() > 0


def test_config_validation_and_presets() -> None:
    with pytest.raises(ConfigError, match="norm must be one of"):
        CodecConfig(norm="batch_norm")
    with pytest.raises(ConfigError, match="power of two"):
        CodecConfig(bins=1000)
    with pytest.raises(ConfigError, match="set together"):
        CodecConfig(chunk_length_s=1.0)
    with pytest.raises(ConfigError, match="unknown codec preset"):
        CodecConfig.preset("encodec_96khz")
    for name, rate, hop, frame_rate, n_q in [("encodec_24khz", 24000, 320, 75, 32), ("encodec_32khz", 32000, 640, 50, 4),
                                             ("encodec_48khz", 48000, 320, 150, 16), ("audiogen_16khz", 16000, 320, 50, 4)]:
        cfg = CodecConfig.preset(name)
        assert (cfg.sample_rate, cfg.hop_length, cfg.frame_rate, cfg.n_q) == (rate, hop, frame_rate, n_q)
        assert CodecConfig.from_dict(cfg.to_dict()) == cfg
