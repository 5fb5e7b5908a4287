import pytest
import torch

from adherence_signals import progression, scale
from wavecraft.metrics.key import (KRUMHANSL, Key, clip_chroma, estimate_key, key_scores, mirex_key_score,
                                   parse_key)

KEYS = [(0, "major"), (7, "major"), (3, "major"), (10, "major"), (9, "minor"), (4, "minor"), (6, "minor"), (1, "minor")]


@pytest.mark.parametrize("tonic,mode", KEYS)
def test_chord_progressions_and_scales_are_recognised(tonic, mode):
    for signal in (progression(tonic, mode), scale(tonic, mode)):
        assert estimate_key(signal, 16000) == Key(tonic, mode)
    assert estimate_key(progression(tonic, mode), 16000, profile="krumhansl") == Key(tonic, mode)


def test_clip_chroma_of_a_triad_peaks_on_its_notes():
    c = clip_chroma(progression(2, "major", repeats=1)[: 16000 // 2], 16000)  # D major triad only
    assert c.sum() == pytest.approx(1.0, abs=1e-5)
    assert set(c.topk(3).indices.tolist()) == {2, 6, 9}  # D, F#, A


def test_key_scores_are_correlations_with_rotated_profiles():
    profile = torch.tensor(KRUMHANSL["minor"])
    scores = key_scores(torch.roll(profile, 5), "krumhansl")  # the F minor profile itself
    assert scores.shape == (2, 12)
    assert scores[1, 5] == pytest.approx(1.0, abs=1e-6)
    assert scores.max() == scores[1, 5]
    with pytest.raises(ValueError, match="unknown key profile 'shepard'"):
        key_scores(profile, "shepard")


def test_silence_has_no_key_and_scores_zero():
    assert estimate_key(torch.zeros(16000), 16000) is None
    assert mirex_key_score(None, "C major") == 0.0


def test_parse_key_spellings():
    assert parse_key("E minor") == Key(4, "minor")
    assert parse_key("Eb major") == parse_key("D# maj") == Key(3, "major")
    assert parse_key("c#:min") == parse_key("Db", mode="minor") == Key(1, "minor")
    assert parse_key("F#m") == Key(6, "minor") and parse_key("Bb", "major") != parse_key("B", "major")
    assert parse_key("Bbm") == Key(10, "minor") and parse_key("Cb major") == Key(11, "major")
    assert parse_key("B♭ major") == Key(10, "major")
    assert Key(1, "major").name == "Db major" and Key(8, "minor").name == "G# minor"
    with pytest.raises(ValueError, match="has no mode"):
        parse_key("A")
    with pytest.raises(ValueError, match="cannot read key 'H major'"):
        parse_key("H major")


def test_mirex_weighted_score():
    assert mirex_key_score("C major", "C major") == 1.0
    assert mirex_key_score("G major", "C major") == 0.5  # a fifth above
    assert mirex_key_score("F major", "C major") == 0.0  # a fifth below: no credit (MIREX)
    assert mirex_key_score("E minor", "A minor") == 0.5
    assert mirex_key_score("A minor", "C major") == 0.3  # relative minor
    assert mirex_key_score("C major", "A minor") == 0.3  # relative major
    assert mirex_key_score("C minor", "C major") == 0.2  # parallel
    assert mirex_key_score("F# major", "C major") == 0.0
