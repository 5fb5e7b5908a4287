"""music21 corpus excerpts: the performance chosen is the one the attributes report."""
import random

import pytest

pytest.importorskip("music21", reason="the corpus needs `pip install music21`")


def test_music21_excerpt_is_performed_as_described():
    pytest.importorskip("music21")
    from wavecraft.data.music21_corpus import list_works, load_excerpt

    works = list_works(["bach"])
    assert len(works) > 300
    work = next(w for w in works if w.source_path.endswith("bwv66.6.mxl"))
    piece, attrs = load_excerpt(work, random.Random(0), max_seconds=12.0)
    assert attrs["group"] == "chorale" and attrs["has_drums"] is False and len(piece.tracks) == 4
    assert piece.duration <= 12.0 + 1e-6 and piece.end_time() <= 12.0 + 1e-6
    assert attrs["instruments"] == [t.program for t in piece.tracks]
    # bwv66.6 is in F# minor; the stated key follows the transposition.
    assert attrs["mode"] == "minor" and attrs["tonic_pc"] == (6 + attrs["transpose"]) % 12
    lo, hi = 56, 88
    assert lo <= attrs["bpm"] <= hi
