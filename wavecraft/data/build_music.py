"""`wavecraft data build-music`: render the offline music training set.

Two kinds of material, interleaved: excerpts of the music21 corpus (performed with instruments,
tempo and transposition we choose) and generated arrangements with drums (music_patterns.py).
Each render goes through one of the installed GM soundfonts, is loudness-normalised, written
as 16-bit mono WAV with an audiocraft sidecar, and listed in its split's manifest.

The plan (which items, which seeds, which split) is computed up front from the seed alone, so a
build is reproducible and `--limit`/`--hours` only cut the plan short.
"""
from __future__ import annotations

import collections
import dataclasses
import json
import math
import random
import re
import time
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import WavecraftError
from . import build_util, gm, sources
from .music_captions import music_metadata

# Collections whose encodings are not free for commercial use (recorded in DATA_CARD.md).
RESTRICTED_COLLECTIONS = {
    "essenFolksong": "Essen folksong collection: distributed in music21 for non-commercial use (EsAC permission)",
    "palestrina": "Humdrum encodings (J. Miller, 2000): rights to derivative electronic formats reserved",
}
FREE_NOTE = "composition in the public domain; encoding distributed with music21 (music21/corpus/license.txt)"
AVERAGE_SECONDS = 25.0  # planning estimate of one render's length


@dataclasses.dataclass
class MusicBuildConfig(Config):
    out_dir: str = "datasets/music"
    seed: int = 0
    hours: float = 1.0  # planned audio (approximate: renders vary in length)
    limit: int | None = None  # at most this many renders
    sample_rate: int = 32000
    clip_seconds: float = 30.0  # longer renders are split into equal chunks
    min_seconds: float = 5.0
    generated_fraction: float = 0.5  # share of renders that are generated arrangements
    soundfonts: tuple[str, ...] = sources.DEFAULT_SOUNDFONTS
    drumkits: tuple[str, ...] = sources.DEFAULT_DRUMKITS
    drumkit_p: float = 0.3  # chance a rock/pop-like groove uses an acoustic AVL kit instead of the GM kit
    collections: tuple[str, ...] = ()  # music21 collections to use (empty: all)
    styles: tuple[str, ...] = ()  # generated styles to use (empty: all)
    commercial_only: bool = False  # leave out corpus collections restricted to non-commercial use
    valid_fraction: float = 0.02
    eval_fraction: float = 0.04
    target_lufs: float = -18.0
    workers: int = 2
    force: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if self.sample_rate < 8000 or self.workers < 1 or self.clip_seconds <= self.min_seconds:
            raise ValueError("need sample_rate >= 8000, workers >= 1 and clip_seconds > min_seconds")
        if not 0.0 <= self.generated_fraction <= 1.0:
            raise ValueError("generated_fraction must be in [0, 1]")
        if self.hours <= 0 and self.limit is None:
            raise ValueError("give a positive --hours or a --limit")
        if self.valid_fraction + self.eval_fraction >= 0.5:
            raise ValueError("valid_fraction + eval_fraction must stay below 0.5")


@dataclasses.dataclass
class MusicJob:
    index: int
    kind: str  # "generated" | "corpus"
    key: str  # stable identity for the split: style#n or the music21 work id
    split: str
    seed: int
    soundfont: str  # source name (or the path of a user's .sf2/.sf3)
    soundfont_path: str
    soundfont_licence: str
    drumkit: str | None
    drumkit_path: str | None
    style: str = ""
    work: Any = None  # music21_corpus.WorkRef
    config: dict = dataclasses.field(default_factory=dict)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:24] or "x"


def plan_music(cfg: MusicBuildConfig) -> list[MusicJob]:
    """The full, deterministic list of renders for `cfg` (soundfonts must be installed)."""
    from . import music_patterns

    fonts = sources.require_all(list(cfg.soundfonts))
    kits = sources.available(list(cfg.drumkits))
    n_jobs = cfg.limit if cfg.limit is not None else math.ceil(cfg.hours * 3600 / AVERAGE_SECONDS)
    if cfg.hours > 0 and cfg.limit is not None:
        n_jobs = min(n_jobs, math.ceil(cfg.hours * 3600 / AVERAGE_SECONDS))
    n_generated = round(n_jobs * cfg.generated_fraction)
    rng = random.Random(cfg.seed)
    styles = list(cfg.styles) or sorted(music_patterns.STYLES)
    for s in styles:
        if s not in music_patterns.STYLES:
            raise WavecraftError(f"unknown style {s!r}; known: {', '.join(sorted(music_patterns.STYLES))}")

    works = []
    if n_jobs - n_generated > 0:
        from .music21_corpus import list_works

        works = list_works(list(cfg.collections) or None)
        if cfg.commercial_only:
            works = [w for w in works if w.collection not in RESTRICTED_COLLECTIONS]
        if not works:
            raise WavecraftError("no music21 works match --collections; run `wavecraft data build-music --help`")
        # Interleave collections at rates proportional to sqrt(size): the 8,500 Essen songs must
        # not drown the 400 chorales, but bigger collections still give more.
        by_coll = collections.defaultdict(list)
        for w in works:
            by_coll[w.collection].append(w)
        keyed = []
        for coll, items in sorted(by_coll.items()):
            rng.shuffle(items)
            weight = math.sqrt(len(items))
            keyed += [((rank + rng.random()) / weight, w.work_id, w) for rank, w in enumerate(items)]
        works = [w for _, _, w in sorted(keyed)]

    names = list(fonts)
    jobs: list[MusicJob] = []
    base = dataclasses.asdict(cfg)
    worker_cfg = {k: base[k] for k in ("out_dir", "sample_rate", "clip_seconds", "min_seconds", "target_lufs", "drumkit_p")}
    style_cycle: list[str] = []
    n_corpus = 0
    for index in range(n_jobs):
        generated = index < n_generated if not works else (rng.random() < cfg.generated_fraction)
        if generated:
            if not style_cycle:
                style_cycle = styles[:]
                rng.shuffle(style_cycle)
            style = style_cycle.pop()
            key, work = f"{style}#{index}", None
        else:
            work = works[n_corpus % len(works)]  # past the end, works are rendered again differently
            n_corpus += 1
            style, key = "", work.work_id
        font = rng.choice(names)
        kit = rng.choice(sorted(kits)) if kits else None
        jobs.append(MusicJob(
            index=index, kind="generated" if generated else "corpus", key=key,
            split=build_util.split_of(key, cfg.seed, cfg.valid_fraction, cfg.eval_fraction),
            seed=build_util.job_seed(cfg.seed, f"{index}:{key}"), soundfont=font, soundfont_path=str(fonts[font]),
            soundfont_licence=sources.get_source(font).licence,
            drumkit=kit, drumkit_path=str(kits[kit]) if kit else None, style=style, work=work, config=worker_cfg,
        ))
    return jobs


def render_music_job(job: MusicJob) -> dict[str, Any]:
    """Worker: render one planned item, write its chunk(s); returns rows, sidecars, or an error."""
    from .render import render_piece

    cfg = job.config
    rng = random.Random(job.seed)
    started = time.time()
    try:
        if job.kind == "generated":
            from .music_patterns import generate_song

            piece, attrs = generate_song(job.style, rng, rng.uniform(15.0, cfg["clip_seconds"]))
            for track in piece.tracks:  # a randomised mix: each part within +-2 dB of its nominal level
                track.level_db += rng.uniform(-2.0, 2.0)
                if track.is_drums and job.drumkit_path and attrs["drum_kit"] in ("standard", "room", "power") \
                        and rng.random() < cfg["drumkit_p"]:
                    track.drumkit_path = job.drumkit_path
                    attrs["drum_kit"] = f"acoustic ({job.drumkit})"
            source, licence = "generated", "generated by wavecraft (MIT)"
        else:
            from .music21_corpus import load_excerpt

            piece, attrs = load_excerpt(job.work, rng, cfg["clip_seconds"])
            source = "music21"
            licence = RESTRICTED_COLLECTIONS.get(job.work.collection, FREE_NOTE)
        sr = cfg["sample_rate"]
        audio = render_piece(piece, job.soundfont_path, sr)
        audio = build_util.trim_silence(audio, sr, threshold_db=-60.0)
        audio, loudness = build_util.normalise_loudness(audio, sr, cfg["target_lufs"])
    except WavecraftError as err:
        return {"job": job.index, "error": str(err), "rows": [], "infos": []}
    chunks = build_util.split_long(audio, sr, cfg["clip_seconds"] * 1.1, cfg["min_seconds"])
    meta = music_metadata(attrs, rng)
    rows, infos = [], []
    tag = _slug(attrs["style"] if job.kind == "generated" else attrs["collection"])
    for c, chunk in enumerate(chunks):
        item_id = f"{'gen' if job.kind == 'generated' else 'm21'}-{tag}-{job.index:06d}" + (f"-{c}" if len(chunks) > 1 else "")
        info = dict(meta)
        info.update({
            "source": source, "material_licence": licence, "soundfont": sources.get_source(job.soundfont).name,
            "soundfont_licence": job.soundfont_licence, "drum_kit": attrs.get("drum_kit"),
            "work_id": attrs.get("work_id"), "collection": attrs.get("collection"),
            "ensemble": attrs.get("ensemble"), "transpose": attrs.get("transpose", 0),
            "progression": attrs.get("progression"), "programs": attrs["instruments"],
            "lead_program": attrs.get("lead_program"), "seed": job.seed, "job": job.index,
            "chunk": c, "loudness_before": round(loudness, 2), **build_util.audio_stats(chunk, sr),
        })
        rows.append(build_util.write_item(Path(cfg["out_dir"]), job.split, item_id, chunk, sr, info))
        infos.append(info)
    return {"job": job.index, "error": None if chunks else "render too short", "rows": rows, "infos": infos,
            "seconds": time.time() - started}


def build_music(cfg: MusicBuildConfig) -> dict[str, Any]:
    """Plan, render in parallel, write manifests, eval prompts and build_info.json."""
    started = time.time()
    sources.require_all(["tinysoundfont"])
    jobs = plan_music(cfg)  # plan first: a missing source fails before the output folder is touched
    out = build_util.prepare_out_dir(cfg.out_dir, cfg.force)
    rows, infos, failures = [], [], []
    for result in build_util.run_jobs(render_music_job, jobs, cfg.workers, "rendering music", cfg.progress):
        rows += result["rows"]
        infos += result["infos"]
        if result["error"]:
            failures.append({"job": result["job"], "error": result["error"]})
    counts = build_util.write_manifests(out, rows)
    prompts = sorted((i for i in infos if i["split"] == "eval"), key=lambda i: i["id"])
    build_util.write_jsonl(out / "eval" / "prompts.jsonl", (
        {k: i[k] for k in ("id", "description", "bpm", "tempo", "key", "mode", "meter", "style", "instrument_family",
                           "instruments", "has_drums", "seed")} for i in prompts))
    summary = _summary(cfg, infos, counts, failures, time.time() - started, jobs)
    (out / "build_info.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def _summary(cfg, infos, counts, failures, wall, jobs) -> dict[str, Any]:
    hours = collections.Counter()
    for i in infos:
        hours[i["split"]] += i["duration"] / 3600
    by = lambda key: dict(collections.Counter(str(i.get(key) or "generated") for i in infos).most_common())  # noqa: E731
    used = sorted({j.soundfont for j in jobs} | {j.drumkit for j in jobs if j.drumkit} | {"tinysoundfont"}
                  | ({"music21"} if any(j.kind == "corpus" for j in jobs) else set()))
    return {
        "kind": "music", "config": cfg.to_dict(), "items": counts, "hours": {k: round(v, 3) for k, v in hours.items()},
        "by_style": by("style"), "by_collection": by("collection"), "by_soundfont": by("soundfont"),
        "by_family": by("instrument_family"), "by_mode": by("mode"), "by_tempo": by("tempo"),
        "failures": failures, "wall_seconds": round(wall, 1), "sources": sources.licence_table(used),
        "gm_families": gm.FAMILIES,
    }
