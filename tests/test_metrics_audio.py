import math

import numpy as np
import pytest
import torch

from wavecraft.metrics import chroma, chroma_cosine_similarity, mel_distance, si_snr, stft_distance


def _sine(freq, sr=8000, seconds=1.0, amp=0.5):
    t = torch.arange(int(sr * seconds)) / sr
    return amp * torch.sin(2 * math.pi * freq * t)


def test_si_snr_matches_closed_form_and_is_scale_invariant():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal(4000)
    est = ref + 0.1 * rng.standard_normal(4000)
    r, e = ref - ref.mean(), est - est.mean()
    s = (e @ r) / (r @ r) * r
    expected = 10 * np.log10((s @ s) / ((e - s) @ (e - s)))
    got = si_snr(torch.tensor(est)[None, None], torch.tensor(ref)[None, None])
    assert got.item() == pytest.approx(expected, rel=1e-4)
    assert si_snr(torch.tensor(3 * est), torch.tensor(ref)).item() == pytest.approx(expected, rel=1e-4)
    with pytest.raises(ValueError, match="differ in shape"):
        si_snr(torch.zeros(3), torch.zeros(4))


def test_spectral_distances_zero_on_identity_and_monotonic():
    x = _sine(440)[None, None].repeat(2, 1, 1)
    noise = torch.randn_like(x)
    for fn in (lambda a, b: mel_distance(a, b, 8000), stft_distance):
        assert torch.allclose(fn(x, x), torch.zeros(2), atol=1e-6)
        assert (fn(x + 0.01 * noise, x) < fn(x + 0.1 * noise, x)).all()


def test_chroma_of_tone_and_chord():
    sr = 16000
    a4 = chroma(_sine(440.0, sr), sr)
    assert a4.shape[:2] == (1, 12) and int(a4[0, :, 5].argmax()) == 9  # A
    c_major = sum(_sine(f, sr) for f in (261.63, 329.63, 392.0))
    top3 = set(chroma(c_major, sr)[0, :, 5].topk(3).indices.tolist())
    assert top3 == {0, 4, 7}  # C, E, G


def test_chroma_similarity_tracks_melody_not_loudness():
    sr = 16000
    melody = torch.cat([_sine(f, sr, 0.5) for f in (261.63, 329.63, 392.0, 440.0)])
    louder = 2 * torch.cat([_sine(f, sr, 0.5, 0.4) for f in (261.63, 329.63, 392.0, 440.0)])
    other = torch.cat([_sine(f, sr, 0.5) for f in (293.66, 349.23, 466.16, 493.88)])
    same = chroma_cosine_similarity(louder[None, None], melody[None, None], sr)
    diff = chroma_cosine_similarity(other[None, None], melody[None, None], sr)
    assert same.item() > 0.99 and diff.item() < 0.5
