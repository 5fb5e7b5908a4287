"""Audio I/O, resampling, channel conversion, normalisation and BS.1770 loudness."""
from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from wavecraft.audio import (
    audio_info,
    audio_read,
    audio_write,
    convert_channels,
    normalize_audio,
    resample,
)
from wavecraft.errors import AudioReadError, WavecraftError
from wavecraft.loudness import fft_convolve, integrated_loudness, k_weight, k_weighting_coefficients


def sine(freq: float, sr: int, seconds: float, amp: float = 1.0) -> torch.Tensor:
    t = torch.arange(int(sr * seconds), dtype=torch.float64) / sr
    return (amp * torch.sin(2 * math.pi * freq * t)).float()


# --- read / write --------------------------------------------------------------------------------

def test_wav_pcm16_round_trip_is_exact(tmp_path):
    q = torch.randint(-32768, 32767, (2, 1000))
    wav = q.float() / 32768
    path = audio_write(tmp_path / "x", wav, 16000, strategy="none")
    assert path == tmp_path / "x.wav"
    back, sr = audio_read(path)
    assert sr == 16000 and back.dtype == torch.float32 and back.shape == (2, 1000)
    assert torch.equal(back, wav)
    assert sf.info(str(path)).subtype == "PCM_16"


@pytest.mark.parametrize("fmt,bits", [("wav", 24), ("wav", 32), ("flac", 16), ("flac", 24)])
def test_lossless_formats_round_trip(tmp_path, fmt, bits):
    wav = torch.rand(1, 777) * 1.8 - 0.9
    path = audio_write(tmp_path / "x", wav, 22050, format=fmt, strategy="none", bits_per_sample=bits)
    back, sr = audio_read(path)
    assert path.suffix == "." + fmt and sr == 22050
    assert (back - wav).abs().max() <= 2.0 ** -(bits - 1)


@pytest.mark.parametrize("fmt", ["ogg", "opus", "mp3"])
def test_lossy_formats_read_back(tmp_path, fmt):
    sr = 48000 if fmt == "opus" else 32000
    wav = sine(440, sr, 1.0, 0.5)[None]
    path = audio_write(tmp_path / "x", wav, sr, format=fmt, strategy="none")
    back, sr_back = audio_read(path)
    assert sr_back == sr and back.shape[0] == 1 and abs(back.shape[1] - sr) < 2000
    n = min(back.shape[1], sr)
    # Lossy codecs may delay; correlation at the best lag is close to 1 for a pure tone.
    a, b = back[0, 2000 : n - 2000].double(), wav[0, 2000 : n - 2000].double()
    assert float((a * b).sum() / (a.norm() * b.norm())) > 0.95


def test_audio_read_seek_duration_pad_and_conversion(tmp_path):
    wav = torch.arange(16000, dtype=torch.float32)[None].repeat(2, 1) / 32768
    path = audio_write(tmp_path / "ramp", wav, 8000, strategy="none")
    part, sr = audio_read(path, seek_time=0.5, duration=0.25)
    assert sr == 8000 and torch.equal(part, wav[:, 4000:6000])
    tail, _ = audio_read(path, seek_time=1.5, duration=1.0, pad=True)
    assert tail.shape == (2, 8000) and torch.equal(tail[:, :4000], wav[:, 12000:]) and not tail[:, 4000:].any()
    short, _ = audio_read(path, seek_time=1.5, duration=1.0)
    assert short.shape == (2, 4000)
    mono, sr = audio_read(path, sample_rate=16000, channels=1)
    assert sr == 16000 and mono.shape == (1, 32000)
    info = audio_info(path)
    assert (info.sample_rate, info.frames, info.channels, info.duration) == (8000, 16000, 2, 2.0)


def test_audio_read_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.wav"
    with pytest.raises(AudioReadError, match=f"audio file not found: {missing}"):
        audio_read(missing)
    with pytest.raises(AudioReadError, match="is a directory"):
        audio_read(tmp_path)
    junk = tmp_path / "junk.wav"
    junk.write_text("this is not audio")
    with pytest.raises(AudioReadError, match=r"cannot decode audio file .*junk\.wav.*readable formats: wav, flac"):
        audio_read(junk)
    empty = tmp_path / "empty.wav"
    sf.write(str(empty), np.zeros((0, 1), dtype=np.float32), 16000)
    with pytest.raises(AudioReadError, match=r"empty\.wav contains no samples"):
        audio_read(empty)
    ok = audio_write(tmp_path / "one", torch.zeros(1, 8000), 8000, strategy="none")
    with pytest.raises(AudioReadError, match=r"seek_time 5 s is past the end of .*one\.wav \(1\.000 s long\)"):
        audio_read(ok, seek_time=5)


def test_audio_write_refusals(tmp_path):
    wav = torch.zeros(1, 100)
    path = audio_write(tmp_path / "a", wav, 8000)
    with pytest.raises(WavecraftError, match="already exists; refusing to overwrite"):
        audio_write(tmp_path / "a", wav, 8000, overwrite=False)
    assert audio_write(tmp_path / "a", wav, 8000) == path  # the audiocraft default overwrites
    with pytest.raises(WavecraftError, match=r"cannot write .*b\.opus: Opus supports only 8000, 12000"):
        audio_write(tmp_path / "b", wav, 44100, format="opus")
    with pytest.raises(WavecraftError, match=r"cannot write .*b\.mp3"):
        audio_write(tmp_path / "b", wav, 7000, format="mp3")  # no MPEG mode at 7 kHz
    assert not (tmp_path / "b.opus").exists() and not (tmp_path / "b.mp3").exists()
    with pytest.raises(WavecraftError, match="cannot write format 'aiff'"):
        audio_write(tmp_path / "b", wav, 8000, format="aiff")
    with pytest.raises(WavecraftError, match=r"flac cannot be written with 32 bits per sample; choose \[16, 24\]"):
        audio_write(tmp_path / "b", wav, 8000, format="flac", bits_per_sample=32)
    with pytest.raises(WavecraftError, match="NaN or infinite"):
        audio_write(tmp_path / "b", torch.full((1, 10), float("nan")), 8000)
    with pytest.raises(WavecraftError, match=r"must be \[channels, time\]"):
        audio_write(tmp_path / "b", torch.zeros(2, 2, 10), 8000)
    with pytest.raises(WavecraftError, match="empty waveform"):
        audio_write(tmp_path / "b", torch.zeros(1, 0), 8000)
    path = audio_write(tmp_path / "sub" / "c.flac", wav, 8000, format="flac", add_suffix=False)
    assert path == tmp_path / "sub" / "c.flac" and path.is_file()


def test_out_of_range_samples_are_clamped_not_wrapped(tmp_path):
    wav = torch.tensor([[1.5, -1.5, 0.5]])
    back, _ = audio_read(audio_write(tmp_path / "c", wav, 8000, strategy="none", log_clipping=False))
    assert back[0, 0] == 32767 / 32768 and back[0, 1] == -1.0 and back[0, 2] == 0.5


# --- resample / channels -------------------------------------------------------------------------

def test_resample_length_and_content():
    x = sine(440, 32000, 0.5, 0.5)[None]
    y = resample(x, 32000, 44100)
    assert y.shape == (1, round(x.shape[1] * 44100 / 32000)) and y.dtype == torch.float32
    ref = sine(440, 44100, 0.5, 0.5)[None]
    n = min(y.shape[1], ref.shape[1])
    assert (y[:, 1000 : n - 1000] - ref[:, 1000 : n - 1000]).abs().max() < 1e-3
    assert resample(x, 32000, 32000) is x
    batch = resample(torch.randn(2, 3, 1000, dtype=torch.float64), 16000, 8000)
    assert batch.shape == (2, 3, 500) and batch.dtype == torch.float64
    # A tone above the new Nyquist is removed, not aliased.
    assert resample(sine(7000, 16000, 0.5)[None], 16000, 8000)[:, 500:-500].abs().max() < 1e-3


def test_convert_channels():
    stereo = torch.tensor([[1.0, 2.0], [3.0, 6.0]])
    assert torch.equal(convert_channels(stereo, 1), torch.tensor([[2.0, 4.0]]))
    mono = torch.tensor([[1.0, -1.0]])
    assert torch.equal(convert_channels(mono, 2), torch.tensor([[1.0, -1.0], [1.0, -1.0]]))
    assert convert_channels(stereo, 2) is stereo
    with pytest.raises(WavecraftError, match="cannot convert 3-channel audio to 2 channels"):
        convert_channels(torch.zeros(3, 4), 2)


# --- normalisation -------------------------------------------------------------------------------

def test_peak_clip_rms_strategies():
    x = sine(100, 8000, 1.0, 0.2)[None].repeat(2, 1)
    peak = normalize_audio(x, strategy="peak", peak_clip_headroom_db=1.0)
    assert abs(float(peak.abs().max()) - 10 ** (-1 / 20)) < 1e-6
    # normalize=False only ever scales down.
    assert torch.equal(normalize_audio(x, normalize=False, strategy="peak"), x)
    loud = x * 10
    assert abs(float(normalize_audio(loud, normalize=False, strategy="peak").abs().max()) - 10 ** (-1 / 20)) < 1e-6
    clipped = normalize_audio(loud, strategy="clip", peak_clip_headroom_db=0.0)
    assert float(clipped.max()) == 1.0 and torch.equal(clipped[:, :5], loud[:, :5].clamp(-1, 1))
    rms = normalize_audio(x, strategy="rms", rms_headroom_db=18.0)
    assert abs(float(rms.mean(0).pow(2).mean().sqrt()) - 10 ** (-18 / 20)) < 1e-6
    assert torch.equal(normalize_audio(x, strategy="none"), x) and torch.equal(normalize_audio(x, strategy=None), x)
    with pytest.raises(WavecraftError, match="unknown normalisation strategy 'max'"):
        normalize_audio(x, strategy="max")


def test_loudness_strategy_hits_target():
    x = sine(997, 16000, 3.0, 0.05)[None]
    out = normalize_audio(x, strategy="loudness", loudness_headroom_db=20.0, sample_rate=16000)
    assert abs(integrated_loudness(out, 16000) + 20.0) < 0.01
    silent = torch.zeros(1, 16000)
    assert torch.equal(normalize_audio(silent, strategy="loudness", sample_rate=16000), silent)
    squashed = normalize_audio(x, strategy="loudness", loudness_headroom_db=0.0, loudness_compressor=True,
                               sample_rate=16000, log_clipping=False)
    assert float(squashed.abs().max()) < 1.0


# --- loudness (ITU-R BS.1770-4) ------------------------------------------------------------------

def test_k_weighting_matches_the_standard_table_at_48k():
    (b1, a1), (b2, a2) = k_weighting_coefficients(48000)
    np.testing.assert_allclose(b1, [1.53512485958697, -2.69169618940638, 1.19839281085285], atol=1e-12)
    np.testing.assert_allclose(a1, [1.0, -1.69065929318241, 0.73248077421585], atol=1e-12)
    np.testing.assert_allclose(b2, [1.0, -2.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(a2, [1.0, -1.99004745483398, 0.99007225036621], atol=1e-12)


def test_k_weight_equals_the_iir_recurrence():
    sr = 44100
    x = np.random.default_rng(0).standard_normal(3000)
    y = x.copy()
    for b, a in k_weighting_coefficients(sr):  # direct form I, sample by sample
        out, x1, x2, y1, y2 = np.zeros_like(y), 0.0, 0.0, 0.0, 0.0
        for n, v in enumerate(y):
            w = b[0] * v + b[1] * x1 + b[2] * x2 - a[1] * y1 - a[2] * y2
            x2, x1, y2, y1, out[n] = x1, v, y1, w, w
        y = out
    np.testing.assert_allclose(k_weight(torch.from_numpy(x)[None], sr)[0].numpy(), y, atol=1e-9)


def test_fft_convolve_overlap_add_matches_numpy():
    x, h = torch.randn(2, 10007, dtype=torch.float64), torch.randn(300, dtype=torch.float64)
    ref = np.stack([np.convolve(r.numpy(), h.numpy())[:10007] for r in x])
    np.testing.assert_allclose(fft_convolve(x, h, block=512).numpy(), ref, atol=1e-10)


def test_sine_loudness_known_values():
    sr = 48000
    tone = sine(997, sr, 2.0)
    assert abs(integrated_loudness(tone, sr) - (-3.01)) < 0.01  # BS.1770-4: 997 Hz, 0 dBFS, one channel
    assert abs(integrated_loudness(torch.stack([tone, tone]), sr) - 0.0) < 0.01
    # Other rates use the same analogue prototype; the bilinear transform bends it slightly at 16 kHz.
    assert abs(integrated_loudness(sine(997, 16000, 2.0, 0.1), 16000) - (-23.01)) < 0.05
    assert integrated_loudness(torch.zeros(2, sr), sr) == float("-inf")
    assert math.isfinite(integrated_loudness(sine(997, sr, 0.2), sr))  # shorter than one block
    # 5.1: the LFE channel (index 3) is not metered.
    six = torch.zeros(6, sr)
    six[3] = sine(997, sr, 1.0)
    assert integrated_loudness(six, sr) == float("-inf")


def _stereo_tone_sequence(levels_db, seconds, sr=48000):
    parts = [sine(1000, sr, s, 10 ** (db / 20)) for db, s in zip(levels_db, seconds)]
    mono = torch.cat(parts)
    return torch.stack([mono, mono])


def test_gating_per_ebu_tech_3341_cases():
    # EBU Tech 3341 cases 3 and 4: the quiet parts are gated out (relative gate for -36 dBFS,
    # absolute gate for -72 dBFS) and a compliant meter reads -23.0 +- 0.1 LUFS, as for the
    # -23 dBFS tone alone. Run at 16 kHz to keep the test fast (gating does not depend on the rate).
    sr = 16000
    tone = integrated_loudness(_stereo_tone_sequence([-23], [5.0], sr), sr)
    assert abs(tone + 23.0) < 0.1
    case3 = _stereo_tone_sequence([-36, -23, -36], [10.0, 60.0, 10.0], sr)
    assert abs(integrated_loudness(case3, sr) - tone) < 0.1
    case4 = _stereo_tone_sequence([-72, -36, -23, -36, -72], [10.0, 10.0, 60.0, 10.0, 10.0], sr)
    assert abs(integrated_loudness(case4, sr) - tone) < 0.1
    # Without gating the quiet parts would pull the reading down by more than 0.5 LU.
    ungated = -0.691 + 10 * math.log10(float(k_weight(case4, sr).pow(2).mean(dim=1).sum()))
    assert ungated < -23.5
