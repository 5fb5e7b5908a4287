import json
import math

import pytest
import torch

from adherence_signals import song
from wavecraft.errors import WavecraftError
from wavecraft.metrics.adherence import (ClassifierEstimator, Estimator, KeyEstimator, TempoEstimator,
                                         adherence_markdown, adherence_report, default_estimators, load_requests)
from wavecraft.metrics.classifier import AudioClassifier, ClassifierConfig

SR = 16000


class LevelEstimator:
    """Reads a label off a clip's constant level (clip = level * ones): deterministic scores."""

    metrics = ("accuracy",)

    def __init__(self, labels, attribute="colour", name="colour"):
        self.labels, self.attribute, self.name = labels, attribute, name

    def target(self, request):
        return request.get(self.attribute)

    def estimate(self, wav, sample_rate):
        return self.labels[round(float(wav.mean()) * 10)]

    def score(self, estimate, target):
        return {"accuracy": float(estimate == target)}

    def describe(self, estimate):
        return estimate


def _clip(i):
    return torch.full((1, 100), i / 10)


def test_all_pairs_baseline_and_margins():
    labels = ["red", "green", "blue"]
    requests = [{"colour": "red"}, {"colour": "green"}, {"colour": "blue"}, {"colour": "red"}, {"other": 1}]
    cond = [_clip(0), _clip(1), _clip(0), _clip(0), _clip(2)]  # 3 of 4 requests met
    uncond = [_clip(0), _clip(0), _clip(2)]  # red, red, blue
    est = LevelEstimator(labels)
    assert isinstance(est, Estimator)
    rep = adherence_report(requests, cond, SR, [est], unconditional=uncond)
    row = rep["attributes"]["colour"]["metrics"]["accuracy"]
    assert rep["attributes"]["colour"]["n"] == 4  # the request without a colour is left out
    assert row["conditional"] == pytest.approx(0.75)
    assert row["conditional_se"] == pytest.approx(0.25)  # std 0.5 (n-1) / sqrt(4)
    # Each unconditional clip against all 4 requests: red -> 2/4, red -> 2/4, blue -> 1/4.
    assert row["unconditional"] == pytest.approx((0.5 + 0.5 + 0.25) / 3)
    assert row["unconditional_se"] == pytest.approx(math.sqrt(((0.25 / 3) ** 2 * 2 + (0.5 / 3) ** 2) / 2 / 3))
    assert row["margin"] == pytest.approx(0.75 - 1.25 / 3)
    assert rep["items"][2] == {"index": 2, "requested": {"colour": "blue"}, "estimated": {"colour": "red"}}
    assert rep["items"][4]["estimated"] == {}
    assert [u["estimated"]["colour"] for u in rep["unconditional_items"]] == ["red", "red", "blue"]
    json.dumps(rep)  # plain data, ready for a model card's JSON

    md = adherence_markdown(rep).splitlines()
    assert md[0] == "| attribute | metric | n | conditional | unconditional | margin |"
    assert md[2] == "| colour | top-1 accuracy | 4 | 0.750 ± 0.250 | 0.417 ± 0.083 | +0.333 |"
    no_baseline = adherence_markdown(adherence_report(requests, cond, SR, [est])).splitlines()[2]
    assert no_baseline == "| colour | top-1 accuracy | 4 | 0.750 ± 0.250 | n/a | n/a |"


def test_tempo_and_key_on_synthetic_songs():
    requests = [{"bpm": 100, "key": "D major", "mode": "major"}, {"bpm": 128, "key": "A", "mode": "minor"},
                {"bpm": 150, "key": "Eb major"}]
    cond = [song(100, 2, "major"), song(128, 9, "minor"), song(150, 3, "major")]
    uncond = [song(90, 0, "major") * 0.5, song(90, 6, "minor")]  # the model's unprompted output
    rep = adherence_report(requests, cond, SR, default_estimators(), unconditional=uncond)
    tempo, key = rep["attributes"]["tempo"]["metrics"], rep["attributes"]["key"]["metrics"]
    assert rep["attributes"]["tempo"]["attribute"] == "bpm"
    assert tempo["acc1"]["conditional"] == 1.0 and tempo["acc1"]["unconditional"] == 0.0
    assert tempo["acc1"]["margin"] == 1.0
    assert key["exact"]["conditional"] == 1.0 and key["mirex"]["conditional"] == 1.0
    # C major vs the requests: relative of A minor (0.3); F# minor: nothing. (0.3/3 + 0) / 2
    assert key["mirex"]["unconditional"] == pytest.approx(0.05)
    assert key["mode"]["unconditional"] == pytest.approx(0.5)
    assert [i["estimated"]["key"] for i in rep["items"]] == ["D major", "A minor", "Eb major"]
    md = adherence_markdown(rep)
    assert "| tempo (`bpm`) | accuracy (within 4 %) | 3 | 1.000 ± 0.000 | 0.000 ± 0.000 | +1.000 |" not in md
    assert "| tempo (`bpm`) | accuracy (within 4 %) | 3 | 1.000 | 0.000 | +1.000 |" in md
    assert "| key | MIREX key score | 3 | 1.000 | 0.050 ± 0.050 | +0.950 |" in md


def test_classifier_estimator_plumbing_and_unknown_class():
    torch.manual_seed(0)
    clf = AudioClassifier(ClassifierConfig(labels=["brass", "piano"], sample_rate=8000, n_fft=256, hop_length=80,
                                           n_mels=32, segment_seconds=0.5, channels=(8,)))
    est = ClassifierEstimator(clf, "instrument_family")
    wavs = [torch.randn(1, SR) * 0.1, torch.randn(SR) * 0.1]  # resampled 16 -> 8 kHz inside
    rep = adherence_report([{"instrument_family": "piano"}, {"instrument_family": "brass"}], wavs, SR, [est])
    m = rep["attributes"]["instrument_family"]["metrics"]
    assert 0.0 <= m["p_requested"]["conditional"] <= 1.0 and "unconditional" not in m["p_requested"]
    assert {i["estimated"]["instrument_family"] for i in rep["items"]} <= {"brass", "piano"}
    with pytest.raises(ValueError, match=r"request 1: requested instrument_family 'organ' is not a class of the "
                                         r"instrument_family classifier \(classes: brass, piano\)"):
        adherence_report([{"instrument_family": "piano"}, {"instrument_family": "organ"}], wavs, SR, [est])


def test_input_errors(tmp_path):
    est = LevelEstimator(["red"])
    with pytest.raises(ValueError, match="2 generated clips for 1 requests"):
        adherence_report([{"colour": "red"}], [_clip(0), _clip(0)], SR, [est])
    with pytest.raises(ValueError, match="estimator names must be unique"):
        adherence_report([{}], [_clip(0)], SR, [est, est])
    with pytest.raises(ValueError, match=r"generated clip 0 must be a non-empty tensor \[C, T\] or \[T\]"):
        adherence_report([{}], [torch.zeros(1, 0)], SR, [est])
    with pytest.raises(ValueError, match="request 0: requested 'bpm' must be a positive number of bpm, got 'fast'"):
        adherence_report([{"bpm": "fast"}], [_clip(0)], SR, [TempoEstimator()])
    with pytest.raises(ValueError, match="request 0: key 'E' has no mode"):
        adherence_report([{"key": "E"}], [_clip(0)], SR, [KeyEstimator()])
    rep = adherence_report([{"colour": None}], [_clip(0)], SR, [est], unconditional=[_clip(0)])
    assert "| colour | no request asks for it | 0 | n/a | n/a | n/a |" in adherence_markdown(rep)

    path = tmp_path / "prompts.jsonl"
    path.write_text('{"bpm": 120}\n\n{"key": "C major"}\n')
    assert load_requests(path) == [{"bpm": 120}, {"key": "C major"}]
    path.write_text('{"bpm": 120}\n[1]\n')
    with pytest.raises(WavecraftError, match="prompts.jsonl, line 2: each line must be a JSON object"):
        load_requests(path)
    with pytest.raises(WavecraftError, match="request file not found"):
        load_requests(tmp_path / "missing.jsonl")
