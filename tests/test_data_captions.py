import random

import pytest

from wavecraft.data.captions import CaptionConfig, build_caption, join_captions, plain_caption

INFO = {"description": "A calm piano piece.", "genre": "classical", "moods": ["calm", "soft"], "bpm": 72.0,
        "key": "C major", "instrument": None, "title": "ignored by default"}


def test_no_augmentation_returns_description():
    assert build_caption(INFO, random.Random(0), CaptionConfig()) == "A calm piano piece."
    assert build_caption(None, random.Random(0), CaptionConfig()) is None
    assert plain_caption({"genre": "rock", "bpm": 120}) == "genre: rock. bpm: 120"


def test_merge_keeps_all_fields_in_shuffled_order():
    cfg = CaptionConfig(merge_text_p=1.0)
    caption = build_caption(INFO, random.Random(3), cfg)
    parts = caption.split(". ")
    assert parts[0] == "A calm piano piece"
    assert sorted(parts[1:]) == ["bpm: 72", "genre: classical", "key: C major", "moods: calm, soft"]
    orders = {tuple(build_caption(INFO, random.Random(s), cfg).split(". ")[1:]) for s in range(20)}
    assert len(orders) > 1  # the order is shuffled


def test_drop_description_and_fields():
    only_fields = build_caption(INFO, random.Random(0), CaptionConfig(merge_text_p=1.0, drop_desc_p=1.0))
    assert "piano" not in only_fields and "genre: classical" in only_fields
    only_desc = build_caption(INFO, random.Random(0), CaptionConfig(merge_text_p=1.0, drop_other_p=1.0))
    assert only_desc == "A calm piano piece"
    nothing = build_caption(INFO, random.Random(0), CaptionConfig(1.0, 1.0, 1.0))
    assert nothing is None  # both dropped: an unconditional example


def test_drop_rates_match_probabilities():
    cfg = CaptionConfig(merge_text_p=0.25, drop_desc_p=0.5, drop_other_p=0.5)
    rng = random.Random(1)
    captions = [build_caption(INFO, rng, cfg) for _ in range(4000)]
    merged = sum(c is None or c != "A calm piano piece." for c in captions) / len(captions)
    assert merged == pytest.approx(0.25, abs=0.03)


def test_invalid_probability_and_join():
    with pytest.raises(ValueError, match="merge_text_p must be a probability"):
        CaptionConfig(merge_text_p=1.5)
    assert join_captions("dog barks", "rain") == "dog barks, rain"
    assert join_captions(None, "rain") == "rain" and join_captions(None, None) is None
