"""Parity with transformers' EnCodec: same codes and the same decoded audio (rel. error < 1e-3)
for the 24 kHz (causal, multi-bandwidth), 32 kHz (MusicGen) and 48 kHz (stereo, renormalised,
chunked) shapes, from checkpoints written by `save_pretrained`."""
from __future__ import annotations

import math

import pytest
import torch

import wavecraft

transformers = pytest.importorskip("transformers")


def _hf_reference(model, wav: torch.Tensor, bandwidth: float) -> tuple[torch.Tensor, torch.Tensor]:
    """transformers' codes in wavecraft's layout [B, K, F] (chunks concatenated) and its audio."""
    with torch.no_grad():
        codes, scales, pad = model.encode(wav, bandwidth=bandwidth, return_dict=False)
        audio = model.decode(codes, scales, last_frame_pad_length=pad, return_dict=False)[0]
    chunks = list(codes)
    if pad:
        chunks[-1] = chunks[-1][..., :-pad]
    return torch.cat(chunks, dim=-1), audio


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize(
    "shape,seconds",
    [("24khz", 0.37), ("32khz", 0.41), ("48khz", 1.5), ("48khz", 0.3)],
)
def test_codes_and_audio_match_transformers(hf_codec_folder, shape: str, seconds: float) -> None:
    folder = hf_codec_folder(shape)
    reference = transformers.EncodecModel.from_pretrained(folder).eval()
    codec = wavecraft.load_codec(folder)
    cfg = reference.config
    assert (codec.sample_rate, codec.channels, codec.cardinality) == (cfg.sampling_rate, cfg.audio_channels, cfg.codebook_size)
    assert codec.total_codebooks == cfg.num_quantizers
    torch.manual_seed(1)
    wav = 0.3 * torch.randn(2, cfg.audio_channels, int(seconds * cfg.sampling_rate) + 7)
    wav[1] *= 0.1  # different loudness per item exercises the per-item renormalisation scale
    for bandwidth in cfg.target_bandwidths:
        ref_codes, ref_audio = _hf_reference(reference, wav, bandwidth)
        codec.set_bandwidth(bandwidth)
        codes, scale = codec.encode(wav)
        assert codes.dtype == torch.long
        assert torch.equal(codes, ref_codes), f"{shape} @ {bandwidth} kbps: codes differ"
        audio = codec.decode(codes, scale)
        assert audio.shape == ref_audio.shape
        assert _rel(audio, ref_audio) < 1e-3
        bits = math.log2(cfg.codebook_size)
        assert codec.bandwidth == pytest.approx(ref_codes.shape[1] * bits * codec.frame_rate / 1000)
    if cfg.normalize:
        n_chunks = len(codec.chunk_layout(wav.shape[-1]))
        assert scale.shape == (2, n_chunks)
        with torch.no_grad():
            _, ref_scales, _ = reference.encode(wav, bandwidth=cfg.target_bandwidths[-1], return_dict=False)
        torch.testing.assert_close(scale, torch.cat(ref_scales, dim=1))
    else:
        assert scale is None


def test_musicgen_codec_bitrate_matches_release(hf_codec_folder) -> None:
    codec = wavecraft.load_codec(hf_codec_folder("32khz"))
    assert (codec.frame_rate, codec.total_codebooks, codec.hop_length) == (50, 4, 640)
    assert codec.bandwidth == pytest.approx(2.2)
