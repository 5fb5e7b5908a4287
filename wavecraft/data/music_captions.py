"""Captions and sidecar metadata for rendered music, built only from the attributes rendered.

Every word in a caption is a fact about the audio: the instruments we chose, the tempo we rendered
at, the key after transposition, the meter of the score, the dynamic level. Mood words are derived
from those facts by fixed rules (fast + major -> "bright", slow + minor -> "melancholic"), never
guessed. The same facts are kept as machine-readable fields (`bpm`, `key`, `mode`,
`instrument_family`, ...) so the model cards can measure prompt adherence against them.
"""
from __future__ import annotations

import random
from typing import Any

from . import gm


# How captions name a generated style (there are no vocals, so no "songs").
STYLE_NOUNS = {
    "rock": "rock track", "pop": "pop instrumental", "funk": "funk groove", "bossa nova": "bossa nova",
    "waltz": "waltz", "hip hop": "hip hop beat", "house": "house track", "techno": "techno track",
    "jazz": "jazz tune", "blues": "blues shuffle", "reggae": "reggae groove", "disco": "disco track",
    "drum and bass": "drum and bass track", "metal": "metal track", "march": "march", "ballad": "ballad",
    "latin": "latin groove", "country": "country tune", "folk dance": "folk dance", "ambient": "ambient piece",
    "cinematic": "cinematic piece",
}


def tempo_word(bpm: float) -> str:
    if bpm < 60:
        return "very slow"
    if bpm < 80:
        return "slow"
    if bpm < 112:
        return "moderate"
    if bpm < 150:
        return "fast"
    return "very fast"


def derived_moods(mode: str, bpm: float, dynamics: str) -> list[str]:
    """Mood words that follow from mode, tempo and dynamics (a fixed, documented rule)."""
    fast, slow = bpm >= 112, bpm < 80
    if mode == "major":
        moods = ["happy", "bright"] if fast else (["calm", "peaceful"] if slow else ["warm", "pleasant"])
    else:
        moods = ["tense", "dark"] if fast else (["sad", "melancholic"] if slow else ["wistful", "moody"])
    moods.append({"soft": "gentle", "moderate": "", "loud": "powerful"}[dynamics])
    return [m for m in moods if m]


def _join(words: list[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def _article(phrase: str) -> str:
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase


def instrument_names(programs: list[int], has_drums: bool, lead: int | None = None) -> list[str]:
    """Distinct instrument names, the lead first, drums last."""
    order = ([lead] if lead is not None else []) + [p for p in programs if p != lead]
    names: list[str] = []
    for p in order:
        name = gm.program_name(p)
        if name not in names:
            names.append(name)
    if has_drums:
        names.append("drums")
    return names


def music_metadata(attrs: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """The sidecar dict (audiocraft's fields plus ours) for a render described by `attrs`.

    attrs needs: style, bpm, meter, tonic_pc, mode, dynamics, instruments (GM programs),
    lead_program, has_drums; optional: title, composer, ensemble, group, collection.
    """
    bpm = int(round(attrs["bpm"]))
    mode = attrs["mode"]
    key = gm.key_name(attrs["tonic_pc"], mode)
    tword = tempo_word(bpm)
    lead = attrs.get("lead_program")
    names = instrument_names(list(attrs["instruments"]), attrs.get("has_drums", False), lead)
    families = []
    for p in ([lead] if lead is not None else []) + list(attrs["instruments"]):
        if gm.program_family(p) not in families:
            families.append(gm.program_family(p))
    moods = derived_moods(mode, bpm, attrs["dynamics"]) + list(attrs.get("style_moods", []))[:1]
    style = STYLE_NOUNS.get(attrs["style"], attrs["style"])
    ensemble = attrs.get("ensemble")
    programs = list(attrs["instruments"])
    if ensemble == "solo":
        played_by = f"played on solo {names[0]}"
    elif ensemble and ensemble != "original instruments" and len(set(programs)) == 1:
        played_by = "sung by a choir" if programs[0] in (52, 53) else f"played on {names[0]}"
    elif ensemble and ensemble != "original instruments":
        played_by = f"played by {_article(ensemble)} ({_join(names)})"
    else:
        played_by = f"with {_join(names)}"
    dyn = {"soft": "soft", "moderate": "", "loud": "loud"}[attrs["dynamics"]]
    meter = attrs.get("meter", "4/4")
    templates = [
        "{A_mood} {style} {played_by}, {bpm} bpm, in {key}.",
        "{Style} in {key} at {bpm} BPM, {played_by}. {Moods}.",
        "{A_tempo} {meter} {style} {played_by}; {key}, {bpm} bpm, {mood_pair}.",
        "{A_dyn}{style} {played_by} in {key}, {tword} tempo ({bpm} bpm), {meter} time, {mood_pair}.",
    ]
    mood_pair = _join(moods[:2])
    description = rng.choice(templates).format(
        A_mood=_article(f"{moods[0]} {tword}").capitalize(), style=style, Style=style[:1].upper() + style[1:],
        played_by=played_by, bpm=bpm, key=key, Moods=mood_pair.capitalize(), mood_pair=mood_pair,
        A_tempo=_article(tword).capitalize(), meter=meter, tword=tword,
        A_dyn=(_article(dyn + " ") if dyn else _article(style)[:-len(style)]).capitalize(),
    )
    description = " ".join(description.split())
    group = attrs.get("group")
    genre = {"chorale": "classical", "polyphony": "early music", "classical": "classical", "folk": "folk"}.get(
        group, attrs["style"])
    keywords = [attrs["style"], tword, f"{bpm} bpm", key, meter] + ([dyn] if dyn else []) + names
    return {
        "description": description,
        "title": attrs.get("title") or f"{style} in {key}",
        "artist": attrs.get("composer") or "",
        "genre": genre,
        "style": attrs["style"],
        "moods": moods,
        "keywords": keywords,
        "bpm": bpm,
        "tempo": tword,
        "key": key,
        "tonic": key.split()[0],
        "mode": mode,
        "meter": meter,
        "dynamics": attrs["dynamics"],
        "instrument": ", ".join(names),
        "instruments": names,
        "instrument_family": families[0] if families else "percussion",
        "instrument_families": families,
        "has_drums": bool(attrs.get("has_drums", False)),
    }
