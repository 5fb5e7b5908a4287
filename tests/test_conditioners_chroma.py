"""Chroma features: parity with transformers' MusicGen-melody extractor, and musical behaviour."""
import importlib
import math

import numpy as np
import pytest
import torch

from wavecraft.conditioners import (
    PITCH_CLASSES,
    ChromaConditioner,
    ChromaConditionerConfig,
    ChromaConfig,
    ChromaExtractor,
    chroma_filter_bank,
)
from wavecraft.conditioners.chroma import sinc_resample
from wavecraft.errors import ConfigError

SR = 32000


def tone(freqs: list[float], seconds: float, sr: int = SR) -> torch.Tensor:
    t = torch.arange(int(seconds * sr), dtype=torch.float64) / sr
    return sum(torch.sin(2 * math.pi * f * t) for f in freqs).float() / len(freqs)


def hf_extractor():
    """transformers' MusicgenMelodyFeatureExtractor, built without its torchaudio import check.

    torchaudio is not a dependency; when it is missing, its `Spectrogram(normalized=True,
    power=2)` is stood in for by the plain definition (|STFT|^2 / sum(window^2)). That part is
    checked on its own against numpy's FFT below.
    """
    from transformers.audio_utils import chroma_filter_bank as hf_bank
    # Import the module itself: the lazy package attribute is a placeholder without torchaudio.
    m = importlib.import_module("transformers.models.musicgen_melody.feature_extraction_musicgen_melody")

    fe = object.__new__(m.MusicgenMelodyFeatureExtractor)
    fe.n_fft, fe.hop_length = 16384, 4096
    fe.chroma_filters = torch.from_numpy(hf_bank(sampling_rate=SR, num_frequency_bins=16384, tuning=0, num_chroma=12)).float()
    try:
        import torchaudio

        fe.spectrogram = torchaudio.transforms.Spectrogram(
            n_fft=16384, win_length=16384, hop_length=4096, power=2, center=True, pad=0, normalized=True
        )
    except ImportError:
        window = torch.hann_window(16384)

        def spectrogram(wav: torch.Tensor) -> torch.Tensor:
            spec = torch.stft(wav, 16384, 4096, window=window, center=True, pad_mode="reflect", return_complex=True)
            return spec.abs() ** 2 / window.pow(2).sum()

        fe.spectrogram = spectrogram
    return fe


def test_filter_bank_equals_transformers():
    from transformers.audio_utils import chroma_filter_bank as hf_bank

    for sr, n_fft in [(32000, 16384), (16000, 2048), (44100, 4096)]:
        ours = chroma_filter_bank(sr, n_fft)
        ref = torch.from_numpy(hf_bank(num_frequency_bins=n_fft, num_chroma=12, sampling_rate=sr, tuning=0)).float()
        assert ours.shape == (12, n_fft // 2 + 1)
        torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-7)


def test_power_spectrogram_matches_numpy_fft():
    cfg = ChromaConfig(sample_rate=8000, n_fft=256, hop_length=64, argmax=False)
    ex = ChromaExtractor(cfg)
    wav = torch.randn(1, 1000, generator=torch.Generator().manual_seed(0))
    # Reference: frames of the reflect-padded signal, periodic Hann, |rfft|^2 / sum(w^2).
    x = np.pad(wav[0].double().numpy(), 128, mode="reflect")
    w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(256) / 256)
    frames = np.stack([x[i * 64 : i * 64 + 256] * w for i in range(1 + 1000 // 64)])
    power = np.abs(np.fft.rfft(frames, axis=-1)) ** 2 / np.sum(w**2)
    chroma = power @ chroma_filter_bank(8000, 256).double().numpy().T
    chroma = chroma / np.maximum(chroma.max(axis=-1, keepdims=True), 1e-6)
    np.testing.assert_allclose(ex(wav)[0].numpy(), chroma, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("seconds", [0.01, 1.3, 4.0])
def test_extractor_matches_transformers_melody_features(seconds):
    fe = hf_extractor()
    g = torch.Generator().manual_seed(1)
    wav = torch.stack([tone([261.63, 329.63], seconds), torch.randn(int(seconds * SR), generator=g) * 0.3])
    ours = ChromaExtractor()(wav)
    ref = fe._torch_extract_fbank_features(wav)
    assert torch.equal(ours, ref)  # both one-hot: exact
    assert ours.shape[1] == ChromaExtractor().num_frames(wav.shape[-1])


def test_pure_a4_lands_in_bin_a():
    chroma = ChromaExtractor()(tone([440.0], 2.0)[None])
    assert set(chroma[0].argmax(-1).tolist()) == {PITCH_CLASSES.index("A")}


def test_c_major_triad_strongest_bins_are_c_e_g():
    raw = ChromaExtractor(ChromaConfig(argmax=False))(tone([261.63, 329.63, 392.00], 2.0)[None])
    top3 = raw[0].mean(0).topk(3).indices.tolist()
    assert sorted(PITCH_CLASSES[i] for i in top3) == ["C", "E", "G"]


@pytest.mark.parametrize("seconds,hop", [(3.0, 4096), (2.0, 640), (5.5, 640)])
def test_frame_count_is_duration_times_frame_rate(seconds, hop):
    ex = ChromaExtractor(ChromaConfig(hop_length=hop))
    n = int(seconds * SR)
    assert ex(torch.zeros(1, n)).shape[1] == math.floor(seconds * ex.frame_rate) + 1
    assert ex.frame_rate == SR / hop


def test_sinc_resample_keeps_a_tone_and_its_length():
    src = tone([440.0], 1.0, sr=44100)
    out = sinc_resample(src, 44100, SR)
    assert out.shape[-1] == SR
    ref = tone([440.0], 1.0, sr=SR)
    # Away from the edges, the resampled tone is the tone at the new rate.
    assert (out[2000:-2000] - ref[2000:-2000]).abs().max() < 2e-3
    assert sinc_resample(src, 44100, 44100) is src


def test_conditioner_meta_mode_tiles_projects_and_nulls_as_first_bin():
    torch.manual_seed(0)
    cc = ChromaConditioner(ChromaConditionerConfig(output_dim=8, length=30))
    a4 = tone([440.0], 1.0)  # 8 frames, tiled to 30
    out = cc.condition([a4, None])
    assert out.embeddings.shape == (2, 30, 8) and out.mask.all()
    w, b = cc.output_proj.weight, cc.output_proj.bias
    torch.testing.assert_close(out.embeddings[0], (w[:, PITCH_CLASSES.index("A")] + b).expand(30, 8))
    torch.testing.assert_close(out.embeddings[1], (w[:, 0] + b).expand(30, 8))  # Meta's null melody: "C"
    zeros = ChromaConditioner(ChromaConditionerConfig(output_dim=8, length=30, null="zeros"))
    out = zeros.condition([a4, None])
    assert out.mask[0].all() and not out.mask[1].any() and out.embeddings[1].abs().sum() == 0


def test_conditioner_tiles_exactly_like_transformers():
    # HF: project, then repeat the whole sequence ceil(L / F) times and cut to L (chroma_length).
    torch.manual_seed(0)
    cc = ChromaConditioner(ChromaConditionerConfig(output_dim=4, length=20))
    g = torch.Generator().manual_seed(3)
    wav = torch.randn(int(0.9 * SR), generator=g)
    feats = ChromaExtractor()(wav[None])  # 8 frames
    proj = cc.output_proj(feats)
    expected = proj.repeat(1, math.ceil(20 / proj.shape[1]), 1)[:, :20]
    torch.testing.assert_close(cc.condition([wav]).embeddings, expected)


def test_conditioner_own_length_mode_masks_padding_and_resamples():
    cc = ChromaConditioner(ChromaConditionerConfig(output_dim=12, length=None, project=False, null="zeros"))
    long, short = tone([440.0], 3.0), tone([392.0], 1.0, sr=16000)
    out = cc.condition([long, (short, 16000), None])
    frames = cc.extractor.num_frames(3 * SR)
    assert out.embeddings.shape == (3, frames, 12)
    assert out.mask[0].all()
    assert out.mask[1].sum() == cc.extractor.num_frames(SR) and not out.mask[2].any()
    valid = out.mask[1]
    assert set(out.embeddings[1][valid].argmax(-1).tolist()) == {PITCH_CLASSES.index("G")}
    assert out.embeddings[1][~valid].abs().sum() == 0


def test_conditioner_mixes_stereo_and_cuts_at_max_duration():
    cc = ChromaConditioner(ChromaConditionerConfig(output_dim=12, length=None, project=False, max_duration=1.0))
    stereo = torch.stack([tone([440.0], 2.0), tone([440.0], 2.0)])
    tok = cc.tokenize([stereo])
    assert tok["wav"].shape == (1, SR) and tok["lengths"].tolist() == [SR]


def test_bad_melodies_and_configs_are_clear_errors():
    cc = ChromaConditioner(ChromaConditionerConfig(output_dim=4))
    with pytest.raises(ValueError, match="melody 0 must be a non-empty"):
        cc.tokenize([torch.zeros(0)])
    with pytest.raises(ValueError, match="melody 1 contains NaN"):
        cc.tokenize([torch.zeros(10), torch.full((10,), float("nan"))])
    with pytest.raises(ConfigError, match="null must be one of"):
        ChromaConditionerConfig(null="none")
    with pytest.raises(ConfigError, match="win_length <= n_fft"):
        ChromaConfig(n_fft=512, win_length=1024)
    cfg = ChromaConditionerConfig(output_dim=16, length=None)
    assert ChromaConditionerConfig.from_yaml(cfg.to_yaml()) == cfg
