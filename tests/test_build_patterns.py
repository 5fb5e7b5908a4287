"""Generated arrangements: chord maths, grid tables, timing and the attributes they report."""
import random

import pytest

from wavecraft.data import gm, music_patterns as mp


@pytest.mark.parametrize("numeral, root, intervals", [
    ("I", 0, (0, 4, 7)), ("vi", 9, (0, 3, 7)), ("bVImaj7", 8, (0, 4, 7, 11)), ("V7", 7, (0, 4, 7, 10)),
    ("ii7b5", 2, (0, 3, 6, 10)), ("iv7", 5, (0, 3, 7, 10)), ("bVII", 10, (0, 4, 7)), ("V/3", 7, (0, 4, 7)),
])
def test_parse_numeral(numeral, root, intervals):
    assert mp.parse_numeral(numeral) == (root, intervals)


def test_parse_numeral_rejects_garbage():
    with pytest.raises(ValueError, match="roman numeral"):
        mp.parse_numeral("H7")


@pytest.mark.parametrize("meter, bpm, seconds", [((4, 4), 120, 2.0), ((3, 4), 90, 2.0), ((6, 8), 120, 1.0),
                                                  ((12, 8), 60, 4.0), ((2, 4), 120, 1.0)])
def test_bar_seconds_counts_the_felt_beat(meter, bpm, seconds):
    assert mp.bar_seconds(meter, bpm) == pytest.approx(seconds)


def _steps_ok(meter, steps):
    return {(4, 4): {16, 12}, (3, 4): {12}, (6, 8): {12}, (12, 8): {12}, (2, 4): {8}}[meter].__contains__(steps)


def test_every_style_table_is_consistent():
    for style in mp.STYLES.values():
        for name in style.drums:
            if name:
                rows = mp.DRUMS[name]
                assert all(letter in gm.DRUM_LETTERS for letter in rows), name
                assert len({len(r) for r in rows.values()}) == 1 and _steps_ok(style.meter, len(next(iter(rows.values())))), name
        for name in style.bass:
            assert mp.BASS[name] == "WALK" or _steps_ok(style.meter, len(mp.BASS[name])), (style.name, name)
        for name in style.comp:
            assert _steps_ok(style.meter, len(mp.COMP[name])), (style.name, name)
        for prog in style.major + style.minor:
            for numeral in prog.split():
                mp.parse_numeral(numeral)
        assert all(0 <= p < 128 for p in style.chords + style.basses + style.leads)


@pytest.mark.parametrize("style", sorted(mp.STYLES))
def test_generated_song_matches_its_attributes(style):
    piece, attrs = mp.generate_song(style, random.Random(7), 20.0)
    lo, hi = mp.STYLES[style].bpm
    assert lo <= attrs["bpm"] <= hi
    assert attrs["has_drums"] == any(t.is_drums for t in piece.tracks)
    assert piece.duration == pytest.approx(attrs["duration"])
    assert piece.end_time() <= piece.duration + 1.0
    melodic = [t for t in piece.tracks if not t.is_drums]
    assert attrs["instruments"] == [t.program for t in melodic]
    # Every melodic note is in the key's scale or a chord tone (borrowed chords like bVII, V in minor).
    scale = mp.MAJOR_SCALE if attrs["mode"] == "major" else mp.MINOR_SCALE
    allowed = {(attrs["tonic_pc"] + s) % 12 for s in scale}
    for numeral in attrs["progression"].split():
        root, intervals = mp.parse_numeral(numeral)
        allowed |= {(attrs["tonic_pc"] + root + i) % 12 for i in intervals}
    for t in melodic:
        bad = {n.pitch % 12 for n in t.notes if t.role != "bass"} - allowed
        assert not bad, (t.role, bad)


def test_same_seed_same_song_and_different_seed_differs():
    a = mp.generate_song("funk", random.Random(3), 15.0)
    b = mp.generate_song("funk", random.Random(3), 15.0)
    c = mp.generate_song("funk", random.Random(4), 15.0)
    assert a[1] == b[1] and [n.start for n in a[0].tracks[0].notes] == [n.start for n in b[0].tracks[0].notes]
    assert a[1] != c[1]


def test_house_kick_is_four_on_the_floor_at_the_stated_tempo():
    piece, attrs = mp.generate_song("house", random.Random(1), 16.0)
    drums = next(t for t in piece.tracks if t.is_drums)
    kicks = sorted(n.start for n in drums.notes if n.pitch == gm.KICK)
    beat = 60.0 / attrs["bpm"]
    gaps = [b - a for a, b in zip(kicks, kicks[1:])]
    assert len(kicks) >= 16
    # 4 ms of human jitter; fill bars (kick on 1 and 3 only) leave two-beat gaps, nothing else.
    assert all(min(abs(g - beat), abs(g - 2 * beat)) < 0.03 for g in gaps)
    assert sum(abs(g - beat) < 0.03 for g in gaps) > 0.8 * len(gaps)


def test_swing_delays_offbeats():
    ctx = mp._Ctx(random.Random(0), bar_len=2.0, swing=0.3, swing_unit=2, beats=4, velocity_scale=1.0)
    ctx.rng.gauss = lambda mu, sigma: 0.0  # no jitter
    assert ctx.time(0, 2, 16) == pytest.approx(0.25 + 0.3 * 0.25)  # the "and" of beat 1 is late
    assert ctx.time(0, 4, 16) == pytest.approx(0.5)  # beats are not moved
