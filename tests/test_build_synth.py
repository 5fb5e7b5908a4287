"""Synthesised sound effects: shape, determinism and the signature each caption promises."""
import random

import numpy as np
import pytest

from wavecraft.data.synth_sounds import GENERATORS, synthesise

SR = 16000


def _peak_freq(x, lo=50, hi=8000):
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    f = np.fft.rfftfreq(len(x), 1 / SR)
    band = (f > lo) & (f < hi)
    return f[band][np.argmax(spec[band])]


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_every_generator_gives_finite_clip_of_the_asked_length(name):
    audio, caption, cls, labels = synthesise(name, random.Random(1), SR, 3.0)
    assert audio.dtype == np.float32 and abs(len(audio) - 3 * SR) <= 1
    assert np.isfinite(audio).all() and np.abs(audio).max() == pytest.approx(10 ** (-3 / 20), rel=1e-3)
    assert caption and cls and cls in labels
    again = synthesise(name, random.Random(1), SR, 3.0)[0]
    assert np.array_equal(audio, again)


def test_alarm_clock_beeps_at_two_kilohertz():
    for seed in range(40):
        audio, caption, *_ = synthesise("beeps", random.Random(seed), SR, 3.0)
        if caption == "an alarm clock beeping":
            assert abs(_peak_freq(audio) - 2000) < 20
            return
    pytest.fail("no alarm clock in 40 seeds")


def test_siren_sits_in_the_siren_band_and_rain_is_broadband():
    siren = synthesise("siren", random.Random(0), SR, 4.0)[0]
    assert 350 < _peak_freq(siren) < 1500
    rain = synthesise("rain", random.Random(0), SR, 4.0)[0]
    spec = np.abs(np.fft.rfft(rain)) ** 2
    f = np.fft.rfftfreq(len(rain), 1 / SR)
    assert spec[(f > 2000) & (f < 6000)].sum() > 0.2 * spec.sum()  # hiss, not a rumble


def test_dog_barks_come_in_short_bursts():
    audio = synthesise("dog_bark", random.Random(2), SR, 4.0)[0]
    frame = SR // 50
    level = np.sqrt(np.mean(audio[: len(audio) // frame * frame].reshape(-1, frame) ** 2, axis=1))
    loud = level > 0.2 * level.max()
    onsets = np.count_nonzero(loud[1:] & ~loud[:-1]) + int(loud[0])
    assert 1 <= onsets <= 12 and loud.mean() < 0.6  # barks with gaps between them


def test_engine_fundamental_follows_the_firing_rate():
    for seed in range(30):
        audio, caption, *_ = synthesise("engine", random.Random(seed), SR, 3.0)
        if caption == "a car engine idling":  # 800 rpm, 4 cylinders: 26.7 Hz firing, harmonics above
            f = _peak_freq(audio, lo=15, hi=200)
            assert 20 < f < 120
            return
    pytest.fail("no idling engine in 30 seeds")
