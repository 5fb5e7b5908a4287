"""Generated songs: genre drum grooves, chord progressions, bass lines, comping and melodies.

The music21 corpus is hymns, folk tunes and classical scores: no drums, few tempi. This module
writes short arrangements in popular styles so the training set also has grooves. Everything is
tables of step strings, read like a drum machine's grid (one string = one bar):

  drums   "X" accent, "x" hit, "o" ghost, "." rest        letters -> GM keys in gm.DRUM_LETTERS
  bass    "R" root, "5" fifth, "8" octave, "3" third, "7" seventh, "A" approach to the next root,
          "o" ghost root, "-" hold the previous note, "." rest
  comping "X"/"x" chord (accent/normal), "a" next arpeggio note, "-" hold, "." rest

A song is a pure function of (style, random generator): the attributes it returns (tempo, key,
mode, meter, instruments, dynamics) are exactly those rendered, so captions can be built from them.
"""
from __future__ import annotations

import dataclasses
import random
import re

from . import gm
from .render import Note, Piece, Track

MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)


@dataclasses.dataclass(frozen=True)
class Style:
    name: str  # what captions call it ("bossa nova")
    meter: tuple[int, int]
    bpm: tuple[int, int]
    drums: tuple[str, ...]  # keys of DRUMS; empty = no drum kit
    kits: tuple[int, ...]  # GM kit presets
    bass: tuple[str, ...]  # keys of BASS
    comp: tuple[str, ...]  # keys of COMP
    major: tuple[str, ...]  # progressions in major keys ("" = none)
    minor: tuple[str, ...]
    chords: tuple[int, ...]  # GM programs for the comping instrument
    basses: tuple[int, ...]
    leads: tuple[int, ...]
    moods: tuple[str, ...]
    swing: float = 0.0  # delay of off-beat 8ths/16ths as a fraction of the step
    swing_unit: int = 2  # 2 = swung 8ths, 4 = swung 16ths
    melody_p: float = 0.75


# One bar per string; 16 steps = 16ths in 4/4, 12 = 8th triplets in 4/4 or 16ths in 3/4.
DRUMS: dict[str, dict[str, str]] = {
    "rock": {"k": "X.......X.x.....", "s": "....X.......X...", "h": "x.x.x.x.x.x.x.x."},
    "rock2": {"k": "X.x.....X.x..x..", "s": "....X.......X...", "h": "X.x.X.x.X.x.X.x."},
    "pop": {"k": "X.....x.X.......", "s": "....X.......X...", "h": "x.x.x.x.x.x.x.x.", "t": "....x.......x..."},
    "funk": {"k": "X..x..x...X..x..", "s": "....X..o.o..X..o", "h": "XxxxXxxxXxxxXxxo"},
    "bossa": {"k": "X..xX..xX..xX..x", "r": "x..x..x...x..x..", "h": "xoxoxoxoxoxoxoxo"},
    "waltz": {"k": "X...........", "s": "....x...x...", "h": "x.x.x.x.x.x."},
    "hiphop": {"k": "X.......x.X.....", "s": "....X.......X...", "h": "x.x.x.x.x.x.x.xo"},
    "house": {"k": "X...X...X...X...", "c": "....X.......X...", "o": "..x...x...x...x.", "h": "x.x.x.x.x.x.x.x."},
    "techno": {"k": "X...X...X...X...", "c": "....x.......x...", "h": "xxxxxxxxxxxxxxxx"},
    "swing": {"R": "X..x.xX..x.x", "p": "...x.....x..", "k": "o..o..o..o.."},
    "shuffle": {"k": "X.....X.....", "s": "...X.....X..", "h": "x.xx.xx.xx.x"},
    "reggae": {"k": "........X.......", "r": "........x.......", "h": "x.x.x.x.x.x.x.x."},
    "disco": {"k": "X...X...X...X...", "s": "....X.......X...", "o": "..x...x...x...x.", "h": "x.x.x.x.x.x.x.x."},
    "dnb": {"k": "X.........X.....", "s": "....X.......X..o", "h": "x.xxx.x.x.xxx.x."},
    "metal": {"k": "XxXxXxXxXxXxXxXx", "s": "....X.......X...", "C": "x...x...x...x..."},
    "march": {"k": "X...X...", "s": "X.xxX.x."},
    "ballad": {"k": "X.......X.......", "r": "....x.......x...", "h": "x.x.x.x.x.x.x.x."},
    "latin": {"w": "x.x.x.x.x.x.x.x.", "l": "x..x..x...x.x...", "Q": "...o..x....o..xx", "k": "X..x....X..x...."},
    "country": {"k": "X.......X.......", "s": "oxoxoxoxoxoxoxox"},
    "sixeight": {"k": "X.....X.....", "r": "...x.....x..", "h": "x.xx.xx.xx.x"},
}
FILLS: dict[int, dict[str, str]] = {  # the last bar of a phrase, by steps per bar
    16: {"k": "X.......X.......", "s": "....X...xxX.", "1": "............xx..", "3": "..............xX"},
    12: {"k": "X...........", "s": "....X..xx...", "1": ".........xx.", "3": "...........X"},
    8: {"k": "X.......", "s": "X.xxxxxx"},
}

BASS: dict[str, str] = {
    "whole": "R---------------", "half": "R-------5-------", "root8": "R-R-R-R-R-R-R-R-",
    "rock": "R-R-R-R-R-R-R-A-", "pop": "R--R--R-R-5---R-", "octave": "R-8-R-8-R-8-R-8-",
    "funk": "R..o8.R.R.5oR.7.", "bossa": "R-----5-R-----5-", "reggae": "..R-5-R...R.5-R.",
    "synth": "..R-..R-..R-..R-", "pulse": "RRRRRRRRRRRRRRRR", "hiphop": "R-----.RR-------",
    "dnb": "R-------..R-----", "pedal": "R---------------", "country": "R---5---R---5---",
    "waltz": "R---........", "shuffle": "R-.3-.5-.8-.", "march": "R---5---",
    "sixeight": "R-----5-----", "walking": "WALK",
}
COMP: dict[str, str] = {
    "pad": "X---------------", "half": "X-------X-------", "pop": "X--X--X-X--X--X-", "strum": "X-x-x-x-X-x-x-x-",
    "power": "XxXxXxXxXxXxXxXx", "skank": "..X...X...X...X.", "stabs": "...X..X....X..X.", "funk": "X.x..x.xX..x.x..",
    "arp": "aaaaaaaaaaaaaaaa", "arp8": "a-a-a-a-a-a-a-a-", "bossa": "X..x..x...x..x..", "charleston": "X-----x.........",
    "offbeat": "..x...x...x...x.", "waltz": "....x-..x-..", "waltz_arp": "a-a-a-a-a-a-", "march": "..x...x.",
    "shuffle": "..x..x..x..x", "half12": "X-----X-----", "sixeight": "a-aa-aa-aa-a", "ballad": "a-a-a-a-a-a-a-a-",
}

S = Style
STYLES: dict[str, Style] = {s.name: s for s in [
    S("rock", (4, 4), (100, 150), ("rock", "rock2"), (0, 8, 16), ("rock", "root8"), ("power", "strum"),
      ("I bVII IV I", "I IV V IV", "I V IV V", "I IV vi V"), ("i bVII bVI bVII", "i bIII bVII IV"),
      (29, 30, 27, 18), (33, 34), (29, 30, 18, 81), ("energetic", "driving")),
    S("pop", (4, 4), (90, 128), ("pop", "rock"), (0, 8), ("pop", "half", "root8"), ("pop", "strum", "arp8", "half"),
      ("I V vi IV", "I vi IV V", "vi IV I V", "I IV vi V"), ("i bVI bIII bVII", "i iv bVI V"),
      (0, 25, 4, 89, 48), (33, 34, 38), (0, 80, 73, 11, 65, 25), ("catchy", "upbeat")),
    S("funk", (4, 4), (92, 116), ("funk",), (0, 8), ("funk", "octave"), ("funk", "stabs"),
      ("I7 I7 IV7 I7", "I7 IV7 I7 V7"), ("i7 i7 IV7 i7", "i7 IV7 i7 IV7"),
      (7, 4, 27, 61), (36, 37, 33), (61, 65, 66, 56, 4), ("groovy", "funky"), swing=0.08, swing_unit=4),
    S("bossa nova", (4, 4), (120, 145), ("bossa",), (0, 40), ("bossa",), ("bossa",),
      ("Imaj7 II7 ii7 V7", "ii7 V7 Imaj7 VI7", "Imaj7 vi7 ii7 V7"), ("i7 iv7 ii7b5 V7", "i7 bVImaj7 ii7b5 V7"),
      (24, 0, 11), (32, 33), (73, 65, 11, 24), ("relaxed", "smooth"), melody_p=0.8),
    S("waltz", (3, 4), (90, 180), ("waltz",), (0, 48), ("waltz",), ("waltz", "waltz_arp"),
      ("I IV V7 I", "I vi ii V7", "I I IV V7"), ("i iv V7 i", "i bVI iv V7"),
      (48, 0, 21, 46), (32, 58, 42), (40, 21, 73, 71, 0), ("graceful", "elegant")),
    S("hip hop", (4, 4), (78, 98), ("hiphop",), (0, 25), ("hiphop", "whole"), ("half", "pad", "arp8"),
      ("vi7 ii7 V7 Imaj7", "Imaj7 iii7 vi7 IVmaj7"), ("i7 bVImaj7 iv7 v7", "i7 iv7 i7 bVImaj7", "i7 i7 bVI bVII"),
      (4, 0, 48, 89, 11), (38, 33, 39), (4, 11, 73, 81, 48), ("laid-back", "chill"), swing=0.18, swing_unit=4),
    S("house", (4, 4), (118, 128), ("house",), (24, 25), ("synth", "octave"), ("stabs", "offbeat", "pad"),
      ("vi IV I V", "I V vi IV"), ("i bVI bIII bVII", "i i bVI bVII", "i7 iv7"),
      (81, 4, 90, 0), (38, 39), (80, 81, 4, 85), ("danceable", "energetic"), melody_p=0.6),
    S("techno", (4, 4), (124, 140), ("techno",), (24, 25), ("pulse", "synth"), ("stabs", "arp", "pad"),
      ("",), ("i i i i", "i bVI i bVII"), (81, 80, 90, 87), (38, 39), (80, 81, 87), ("hypnotic", "driving"),
      melody_p=0.4),
    S("jazz", (4, 4), (110, 200), ("swing",), (32, 40), ("walking",), ("charleston", "half"),
      ("ii7 V7 Imaj7 Imaj7", "Imaj7 vi7 ii7 V7", "iii7 vi7 ii7 V7"), ("ii7b5 V7 i7 i7", "i7 iv7 ii7b5 V7"),
      (0, 26, 11), (32,), (65, 66, 56, 26, 11, 71), ("swinging", "sophisticated"), melody_p=0.9),
    S("blues", (12, 8), (60, 90), ("shuffle",), (0, 32), ("shuffle",), ("shuffle", "half12"),
      ("I7 I7 I7 I7 IV7 IV7 I7 I7 V7 IV7 I7 V7",), ("i7 i7 i7 i7 iv7 iv7 i7 i7 V7 iv7 i7 V7",),
      (0, 27, 16, 26), (33, 32), (22, 27, 66, 29, 0), ("bluesy", "soulful")),
    S("reggae", (4, 4), (68, 90), ("reggae",), (0, 8), ("reggae",), ("skank",),
      ("I IV I V", "I V vi IV", "I IV V IV"), ("i iv i iv", "i bVII i bVII"),
      (16, 27, 0), (33, 38), (18, 73, 56), ("laid-back", "sunny")),
    S("disco", (4, 4), (110, 126), ("disco",), (0, 8), ("octave",), ("funk", "strum", "offbeat"),
      ("I vi ii V", "ii7 V7 Imaj7 vi7"), ("i7 iv7 i7 iv7", "i bVII bVI V"),
      (27, 48, 4, 61), (33, 34, 38), (48, 61, 81, 73), ("danceable", "joyful")),
    S("drum and bass", (4, 4), (160, 176), ("dnb",), (0, 24, 25), ("dnb", "whole"), ("pad", "stabs"),
      ("",), ("i bVI bIII bVII", "i i iv iv"), (89, 90, 4, 48), (38, 39), (81, 80, 4, 89), ("fast", "intense"),
      melody_p=0.5),
    S("metal", (4, 4), (130, 180), ("metal",), (16, 0), ("pulse",), ("power",),
      ("",), ("i bVI bVII i", "i bII i bVII", "i i bVI bVII"), (30, 29), (34, 33), (30, 29),
      ("aggressive", "heavy"), melody_p=0.5),
    S("march", (2, 4), (104, 124), ("march",), (48, 0), ("march",), ("march",),
      ("I IV V7 I", "I I V7 I"), ("i iv V7 i",), (61, 56, 60), (58, 57), (56, 73, 72, 71),
      ("stately", "proud")),
    S("ballad", (4, 4), (60, 80), ("ballad",), (0, 40), ("half", "whole"), ("ballad", "pad", "arp8"),
      ("I V vi iii IV I IV V", "I vi IV V"), ("i bVI bIII bVII", "i iv bVII bIII"),
      (0, 24, 48, 89), (33, 35, 32), (40, 73, 0, 65, 42, 22), ("tender", "emotional")),
    S("latin", (4, 4), (90, 120), ("latin",), (0,), ("bossa",), ("funk", "stabs"),
      ("I IV V7 IV", "ii7 V7 I I"), ("i iv V7 i", "i7 iv7 V7 i7"), (0, 24, 61), (32, 33), (56, 61, 73, 0),
      ("festive", "lively")),
    S("country", (4, 4), (90, 130), ("country",), (0, 40), ("country",), ("strum",),
      ("I IV V I", "I I IV V", "I V IV I"), ("",), (25, 24, 105), (33, 32), (110, 105, 22, 27), ("cheerful", "rustic")),
    S("folk dance", (6, 8), (90, 130), ("sixeight", ""), (0, 48), ("sixeight",), ("sixeight",),
      ("I IV V I", "I V I V", "I vi IV V"), ("i bVII i V", "i iv bVII i"), (24, 25, 21, 46), (32, 42),
      (73, 110, 21, 109, 74, 75), ("lively", "rustic"), melody_p=0.9),
    S("ambient", (4, 4), (60, 90), ("",), (0,), ("pedal",), ("pad",),
      ("Imaj7 IVmaj7", "I V/3 vi IV"), ("i7 bVImaj7", "i iv"), (89, 88, 91, 92, 94, 48), (38, 89),
      (88, 75, 11, 14, 0), ("calm", "atmospheric"), melody_p=0.5),
    S("cinematic", (4, 4), (70, 110), ("",), (48,), ("half", "whole"), ("pad", "arp8"),
      ("I V vi IV", "vi IV I V"), ("i bVI bIII bVII", "i iv bVI V"), (48, 49, 44, 46), (42, 43, 58),
      (60, 56, 40, 73, 48), ("epic", "dramatic"), melody_p=0.7),
]}

_NUMERAL = re.compile(r"^([b#]?)(VII|VI|V|IV|III|II|I|vii|vi|v|iv|iii|ii|i)(maj7|m7b5|7b5|7|dim|sus4|6|9)?(?:/\d)?$")
_DEGREE = {"I": 0, "II": 2, "III": 4, "IV": 5, "V": 7, "VI": 9, "VII": 11}


def parse_numeral(numeral: str) -> tuple[int, tuple[int, ...]]:
    """'bVImaj7' -> (root offset from the tonic in semitones, chord intervals)."""
    match = _NUMERAL.match(numeral)
    if not match:
        raise ValueError(f"not a roman numeral chord: {numeral!r}")
    accidental, roman, suffix = match.groups()
    root = _DEGREE[roman.upper()] + {"b": -1, "#": 1, "": 0}[accidental]
    major = roman.isupper()
    table = {
        None: (0, 4, 7) if major else (0, 3, 7), "7": (0, 4, 7, 10) if major else (0, 3, 7, 10),
        "maj7": (0, 4, 7, 11), "m7b5": (0, 3, 6, 10), "7b5": (0, 3, 6, 10), "dim": (0, 3, 6),
        "sus4": (0, 5, 7), "6": (0, 4, 7, 9) if major else (0, 3, 7, 9), "9": (0, 4, 7, 10, 14),
    }
    return root % 12, table[suffix]


def _nearest_voicing(tonic: int, root: int, intervals: tuple[int, ...], previous: list[int] | None) -> list[int]:
    """Chord tones around middle C, in the inversion closest to the previous chord (voice leading)."""
    base = 48 + (tonic + root) % 12
    candidates = []
    for inversion in range(len(intervals)):
        notes = [base + iv + (12 if i < inversion else 0) for i, iv in enumerate(intervals)]
        for shift in (0, 12):
            candidates.append(sorted(n + shift for n in notes))
    target = previous or [60, 64, 67]
    def cost(ch: list[int]) -> float:
        return abs(sum(ch) / len(ch) - sum(target) / len(target)) + (100 if max(ch) > 79 or min(ch) < 50 else 0)
    return min(candidates, key=cost)


def bar_seconds(meter: tuple[int, int], bpm: float) -> float:
    """Seconds per bar; bpm counts quarter notes in x/4 and dotted quarters in 6/8, 9/8, 12/8."""
    num, den = meter
    beats = num / 3 if den == 8 and num % 3 == 0 else num * 4 / den
    return beats * 60.0 / bpm


@dataclasses.dataclass
class _Ctx:
    rng: random.Random
    bar_len: float
    swing: float
    swing_unit: int
    beats: int
    velocity_scale: float

    def time(self, bar: int, step: int, steps: int) -> float:
        step_len = self.bar_len / steps
        t = bar * self.bar_len + step * step_len
        per_beat = steps / self.beats
        if self.swing and per_beat == int(per_beat):
            per_unit = per_beat / self.swing_unit  # steps per swing subdivision
            if per_unit >= 1 and step % per_unit == 0 and (step // per_unit) % 2 == 1:
                t += self.swing * per_unit * step_len
        return t + self.rng.gauss(0.0, 0.004)  # a little human timing

    def vel(self, accent: str) -> int:
        base = {"X": 112, "x": 92, "o": 52}.get(accent, 92)
        return max(20, min(127, int(base * self.velocity_scale + self.rng.gauss(0, 6))))


def _pattern_notes(ctx: _Ctx, pattern: str, bar: int, pitch_of) -> list[Note]:
    """Notes of one bar of a step string; pitch_of(char, index) gives a pitch or None (rest)."""
    notes = []
    steps = len(pattern)
    for i, ch in enumerate(pattern):
        if ch in ".-":
            continue
        hold = 1
        while i + hold < steps and pattern[i + hold] == "-":
            hold += 1
        pitch = pitch_of(ch, i)
        if pitch is None:
            continue
        start = ctx.time(bar, i, steps)
        dur = hold * ctx.bar_len / steps * (0.5 if ch == "o" else 0.92)
        for p in pitch if isinstance(pitch, list) else [pitch]:
            notes.append(Note(start, dur, p, ctx.vel("o" if ch == "o" else ("X" if ch in "XR" else "x"))))
    return notes


def generate_song(style_name: str, rng: random.Random, seconds: float = 30.0) -> tuple[Piece, dict]:
    """A generated arrangement of about `seconds` in `style_name`, and the attributes used."""
    style = STYLES[style_name]
    modes = [m for m, progs in (("major", style.major), ("minor", style.minor)) if progs != ("",)]
    mode = rng.choice(modes)
    progression = rng.choice(style.major if mode == "major" else style.minor).split()
    tonic = rng.randrange(12)
    bpm = rng.randint(*style.bpm)
    dynamics = rng.choices(["soft", "moderate", "loud"], weights=[1, 2, 1])[0]
    bar_len = bar_seconds(style.meter, bpm)
    beats = style.meter[0] if style.meter[1] == 4 else style.meter[0] // 3
    ctx = _Ctx(rng, bar_len, style.swing, style.swing_unit, beats, {"soft": 0.7, "moderate": 0.85, "loud": 1.0}[dynamics])
    n_bars = max(len(progression), round(seconds / bar_len / len(progression)) * len(progression))
    chords = [parse_numeral(progression[b % len(progression)]) for b in range(n_bars)]
    scale = MAJOR_SCALE if mode == "major" else MINOR_SCALE

    tracks: list[Track] = []
    drum_name = rng.choice(style.drums) if style.drums else ""
    kit = rng.choice(style.kits)
    if drum_name:
        pattern = DRUMS[drum_name]
        steps = len(next(iter(pattern.values())))
        fill = FILLS.get(steps)
        notes: list[Note] = []
        for bar in range(n_bars):
            use = fill if (fill and bar % 4 == 3 and rng.random() < 0.5) else pattern
            for letter, row in use.items():
                key = gm.DRUM_LETTERS[letter]
                notes += _pattern_notes(ctx, row, bar, lambda ch, i, k=key: k)
            if bar % 4 == 0 and drum_name not in ("swing",) and rng.random() < 0.6:
                notes.append(Note(ctx.time(bar, 0, 4), 0.5, gm.CRASH, ctx.vel("x")))
        tracks.append(Track("drums", kit, notes, is_drums=True, level_db=-3.0))

    bass_prog = rng.choice(style.basses)
    bass_style = rng.choice(style.bass)
    bass_notes: list[Note] = []
    for bar, (root, intervals) in enumerate(chords):
        low = 28 + (tonic + root - 4) % 12  # E1..D#2 region: roots stay in the bass register
        next_root = 28 + (tonic + chords[(bar + 1) % n_bars][0] - 4) % 12
        if BASS[bass_style] == "WALK":
            line = [low, low + rng.choice(intervals[1:3]), low + rng.choice((7, intervals[1], 12 if low < 36 else 0)),
                    next_root + rng.choice((-1, 1, 2))]
            for beat, p in enumerate(line):
                t = ctx.time(bar, beat, 4)
                bass_notes.append(Note(t, bar_len / 4 * 0.9, p, ctx.vel("X" if beat == 0 else "x")))
            continue
        third = intervals[1]
        seventh = intervals[3] if len(intervals) > 3 else 10
        degree = {"R": 0, "o": 0, "5": 7, "8": 12, "3": third, "7": seventh}
        def bass_pitch(ch, i, low=low, next_root=next_root, degree=degree):
            return next_root - 1 if ch == "A" else low + degree.get(ch, 0)
        bass_notes += _pattern_notes(ctx, BASS[bass_style], bar, bass_pitch)
    tracks.append(Track("bass", bass_prog, bass_notes, level_db=-2.0))

    chord_prog = rng.choice(style.chords)
    comp = rng.choice(style.comp)
    chord_notes: list[Note] = []
    voicing = None
    for bar, (root, intervals) in enumerate(chords):
        if comp == "power":
            base = 40 + (tonic + root - 4) % 12
            voiced = [base, base + 7, base + 12]
        else:
            voiced = voicing = _nearest_voicing(tonic, root, intervals, voicing)
        arp = iter(voiced * 8)
        row = COMP[comp]
        chord_notes += _pattern_notes(ctx, row, bar, lambda ch, i, v=voiced, a=arp: next(a) if ch == "a" else list(v))
    tracks.append(Track("chords", chord_prog, chord_notes, level_db=-5.0))

    lead = None
    if rng.random() < style.melody_p:
        lead = rng.choice([p for p in style.leads if p != chord_prog] or style.leads)
        tracks.append(Track("melody", lead, _melody(ctx, chords, tonic, scale, style.meter, n_bars), level_db=-1.0))

    duration = n_bars * bar_len
    instruments = [t.program for t in tracks if not t.is_drums]
    attrs = {
        "style": style.name, "bpm": bpm, "meter": f"{style.meter[0]}/{style.meter[1]}", "tonic_pc": tonic,
        "mode": mode, "dynamics": dynamics, "progression": " ".join(progression),
        "has_drums": bool(drum_name), "drum_kit": gm.DRUM_KITS.get(kit, "standard") if drum_name else None,
        "programs": {t.role: t.program for t in tracks if not t.is_drums},
        "lead_program": lead if lead is not None else chord_prog, "style_moods": list(style.moods),
        "instruments": instruments, "duration": duration,
    }
    return Piece(tracks, duration), attrs


def _melody(ctx: _Ctx, chords, tonic: int, scale, meter, n_bars: int) -> list[Note]:
    """A two-bar rhythmic motif repeated over the progression, pitches re-fitted to each chord."""
    rng = ctx.rng
    steps = 8 if meter == (4, 4) else (12 if meter == (12, 8) else 6 if meter in ((3, 4), (6, 8)) else 4)
    strong = {0, steps // 2} if steps % 2 == 0 else {0}
    motif = []
    for bar in range(2):
        for i in range(steps):
            p_on = 0.85 if i in strong else (0.55 if i % 2 == 0 else 0.35)
            if rng.random() < p_on:
                motif.append((bar, i))
    if not motif:
        motif = [(0, 0), (1, 0)]
    pitch = 60 + tonic + rng.choice(scale) if tonic < 6 else 48 + tonic + rng.choice(scale)
    notes: list[Note] = []
    scale_pcs = sorted((tonic + s) % 12 for s in scale)
    for start_bar in range(0, n_bars, 2):
        if start_bar + 2 > n_bars:
            break
        if start_bar % 8 == 6 and rng.random() < 0.5:
            continue  # breathe: leave a phrase out now and then
        for idx, (b, i) in enumerate(motif):
            bar = start_bar + b
            root, intervals = chords[bar]
            chord_pcs = [(tonic + root + iv) % 12 for iv in intervals]
            pool = chord_pcs if i in strong else scale_pcs
            options = [p for p in range(pitch - 5, pitch + 6) if p % 12 in pool and 57 <= p <= 84]
            if options:
                pitch = rng.choice(sorted(options, key=lambda p: abs(p - pitch))[:3])
            nxt = motif[idx + 1] if idx + 1 < len(motif) else (2, 0)
            length = (nxt[0] - b) * steps + nxt[1] - i
            dur = min(length, 4) * ctx.bar_len / steps * 0.9
            notes.append(Note(ctx.time(bar, i, steps), dur, pitch, ctx.vel("X" if i == 0 else "x")))
    return notes
