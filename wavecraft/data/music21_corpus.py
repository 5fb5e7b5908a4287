"""Excerpts of the music21 corpus as note lists, with instruments, tempo and key chosen for them.

The corpus (~15,000 works) is chorales, Renaissance polyphony, folk-tune collections and some
classical chamber music, as symbolic scores without a performance. We pick the performance: an
ensemble of GM instruments that suits the repertoire, a tempo within the style's usual range, an
optional transposition and a dynamic level. Those choices are the caption's facts.
"""
from __future__ import annotations

import dataclasses
import random
from typing import Any

from ..errors import WavecraftError
from .render import Note, Piece, Track
from .sources import SourceMissingError

# collection folder -> (group, caption style, bpm range)
COLLECTIONS: dict[str, tuple[str, str, tuple[int, int]]] = {
    "bach": ("chorale", "Baroque chorale", (56, 88)),
    "palestrina": ("polyphony", "Renaissance polyphony", (60, 96)),
    "josquin": ("polyphony", "Renaissance polyphony", (60, 96)),
    "monteverdi": ("polyphony", "Renaissance madrigal", (60, 100)),
    "trecento": ("polyphony", "medieval polyphony", (60, 100)),
    "luca": ("polyphony", "medieval polyphony", (60, 100)),
    "ciconia": ("polyphony", "medieval polyphony", (60, 100)),
    "lusitano": ("polyphony", "Renaissance polyphony", (60, 96)),
    "essenFolksong": ("folk", "folk song", (72, 132)),
    "oneills1850": ("folk", "Irish folk tune", (80, 132)),
    "ryansMammoth": ("folk", "fiddle tune", (80, 132)),
    "airdsAirs": ("folk", "Scottish air", (66, 120)),
    "miscFolk": ("folk", "folk tune", (70, 126)),
    "nottingham-dataset": ("folk", "English folk dance tune", (84, 132)),
}
CLASSICAL_BPM = (60, 132)

# Ensembles per group: a list of programs applied to the parts top-down (last one repeats).
ENSEMBLES: dict[str, list[tuple[str, list[int]]]] = {
    "chorale": [("organ", [19]), ("string quartet", [40, 40, 41, 42]), ("brass quartet", [56, 56, 60, 58]),
                ("woodwind quartet", [73, 68, 71, 70]), ("choir", [52]), ("piano", [0]), ("harpsichord", [6]),
                ("strings", [48])],
    "polyphony": [("choir", [52]), ("recorder consort", [74, 74, 74, 74]), ("viol consort", [40, 41, 42, 42]),
                  ("organ", [19]), ("brass ensemble", [56, 57, 57, 58]), ("vocal ensemble", [53])],
    "classical": [("piano", [0]), ("string quartet", [40, 40, 41, 42]), ("harpsichord", [6]),
                  ("strings", [48]), ("woodwind quartet", [73, 68, 71, 70])],
    "folk": [("solo", [110]), ("solo", [40]), ("solo", [73]), ("solo", [74]), ("solo", [78]), ("solo", [21]),
             ("solo", [22]), ("solo", [109]), ("solo", [75]), ("solo", [71]), ("solo", [68]), ("solo", [0]),
             ("solo", [24]), ("solo", [105]), ("solo", [79]), ("solo", [11]), ("solo", [46]), ("solo", [12])],
}


@dataclasses.dataclass(frozen=True)
class WorkRef:
    collection: str
    source_path: str  # relative to the corpus root, as music21's metadata bundle gives it
    number: int | None  # the tune number inside a multi-tune file (ABC), else None
    title: str
    composer: str

    @property
    def work_id(self) -> str:
        return f"{self.source_path}#{self.number}" if self.number is not None else self.source_path


def _music21():
    try:
        from music21 import corpus
    except ImportError:
        raise SourceMissingError("the music21 corpus is not installed: run `pip install music21`") from None
    return corpus


def list_works(collections: list[str] | None = None) -> list[WorkRef]:
    """Every work of the corpus metadata bundle (~15k), optionally only some collections."""
    corpus = _music21()
    bundle = corpus.corpora.CoreCorpus().metadataBundle
    # Iterating the bundle object itself takes ~12 s (it rebuilds entries); its dict is instant.
    entries = getattr(bundle, "_metadataEntries", None)
    works = []
    for entry in (entries.values() if isinstance(entries, dict) else bundle):
        source = str(entry.sourcePath)
        collection = source.split("/")[0]
        if collection in ("demos", "theoryExercises", "leadSheet") or source.endswith(".rntxt"):
            continue  # test material and roman-numeral analyses, not music to learn from
        if collections and collection not in collections:
            continue
        md = entry.metadata
        title = (md.title or md.movementName or "") if md is not None else ""
        composer = (md.composer or "") if md is not None else ""
        number = int(entry.number) if entry.number not in (None, "") else None
        works.append(WorkRef(collection, source, number, str(title), str(composer)))
    return sorted(works, key=lambda w: w.work_id)


def group_of(collection: str) -> tuple[str, str, tuple[int, int]]:
    return COLLECTIONS.get(collection, ("classical", "classical piece", CLASSICAL_BPM))


def _gm_program(instrument: Any) -> int | None:
    program = getattr(instrument, "midiProgram", None)
    return int(program) if isinstance(program, int) and 0 <= program < 128 else None


def load_excerpt(work: WorkRef, rng: random.Random, max_seconds: float = 30.0) -> tuple[Piece, dict[str, Any]]:
    """A performed excerpt of `work` (at most `max_seconds`), and the attributes chosen for it."""
    corpus = _music21()
    try:
        score = corpus.parse(work.source_path, number=work.number) if work.number is not None else corpus.parse(work.source_path)
    except Exception as err:  # noqa: BLE001 - music21 raises many types on odd encodings
        raise WavecraftError(f"music21 could not parse {work.work_id}: {err}") from None
    if hasattr(score, "scores") and not hasattr(score, "parts"):  # an Opus: take its first score
        score = score.scores[0]
    parts = list(score.parts) if hasattr(score, "parts") and len(score.parts) else [score]
    group, style, bpm_range = group_of(work.collection)

    key = score.analyze("key")
    tonic_pc, mode = key.tonic.pitchClass, ("minor" if key.mode == "minor" else "major")
    ts = score.recurse().getElementsByClass("TimeSignature").first()
    meter = ts.ratioString if ts is not None else "4/4"
    num, den = (int(x) for x in meter.split("/")) if "/" in meter else (4, 4)
    compound = den == 8 and num % 3 == 0 and num > 3
    bpm = rng.randint(*bpm_range)
    # bpm counts the felt beat: a dotted quarter in 6/8-type meters, a quarter otherwise.
    seconds_per_ql = 60.0 / bpm / (1.5 if compound else 1.0)

    # Ensemble: the score's own instruments for classical works when it names them, else a choice.
    named = [_gm_program(p.getInstrument(returnDefault=False)) for p in parts] if group == "classical" else []
    if named and all(p is not None for p in named) and rng.random() < 0.5:
        ensemble, programs = "original instruments", [int(p) for p in named]
    else:
        ensemble, programs = rng.choice(ENSEMBLES[group])
    transpose = rng.choice([0, 0, -5, -4, -3, -2, -1, 1, 2, 3, 4, 5, 6]) if rng.random() < 0.6 else 0
    dynamics = rng.choices(["soft", "moderate", "loud"], weights=[1, 2, 1])[0]
    base_vel = {"soft": 55, "moderate": 80, "loud": 105}[dynamics]

    # Excerpt window: from a random measure in the first half, up to max_seconds of music.
    total_ql = float(score.highestTime)
    start_ql = 0.0
    if total_ql * seconds_per_ql > max_seconds * 1.5:
        bar_ql = ts.barDuration.quarterLength if ts is not None else 4.0
        start_ql = bar_ql * rng.randrange(int(total_ql / 2 / bar_ql) + 1)
    end_ql = min(total_ql, start_ql + max_seconds / seconds_per_ql)

    tracks = []
    for index, part in enumerate(parts):
        notes = []
        for element in part.stripTies().flatten().notes:
            offset = float(element.offset)
            if offset < start_ql or offset >= end_ql:
                continue
            length = min(float(element.quarterLength), end_ql - offset)
            pitches = [element.pitch] if hasattr(element, "pitch") else list(element.pitches)
            for pitch in pitches:
                midi = int(round(pitch.ps)) + transpose
                if 21 <= midi <= 108 and length > 0:
                    notes.append(Note((offset - start_ql) * seconds_per_ql, length * seconds_per_ql, midi,
                                      max(20, min(127, int(base_vel + rng.gauss(0, 6))))))
        if notes:
            program = programs[min(index, len(programs) - 1)]
            tracks.append(Track(f"part{index + 1}", program, notes, level_db=-2.0 * index if index else 0.0))
    if not tracks:
        raise WavecraftError(f"{work.work_id}: no notes in the chosen excerpt")
    duration = (end_ql - start_ql) * seconds_per_ql
    attrs = {
        "style": style, "group": group, "collection": work.collection, "title": work.title,
        "composer": work.composer, "work_id": work.work_id, "bpm": bpm, "meter": meter,
        "tonic_pc": (tonic_pc + transpose) % 12, "mode": mode, "transpose": transpose, "dynamics": dynamics,
        "ensemble": ensemble, "instruments": [t.program for t in tracks], "lead_program": tracks[0].program,
        "has_drums": False, "excerpt_start_ql": start_ql, "duration": duration,
    }
    return Piece(tracks, duration), attrs
