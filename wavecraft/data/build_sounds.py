"""`wavecraft data build-sounds`: the offline sound-effects training set.

Four kinds of clip, each with a caption and a `sound_class`:
  * labelled clips from Debian game/sample packages, captioned from their paths (sound_labels.py);
  * synthesised sounds for classes the packages lack (synth_sounds.py);
  * espeak-ng speech (speech.py);
  * scenes mixing a foreground clip with a background of the same split ("a dog barking in the
    rain"), AudioGen-style, so compositional prompts have examples.
Everything is resampled to one rate, mono, trimmed, split into <= clip_seconds and
loudness-normalised, then written in the same layout as the music set (build_util.py).
"""
from __future__ import annotations

import collections
import dataclasses
import io
import json
import os
import random
import re
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Config
from ..errors import WavecraftError
from . import build_util, sources
from .sound_labels import label_path

# Background classes and how a scene caption says "with this behind it".
BACKGROUNDS = {"rain": "in the rain", "wind": "with the wind blowing", "waves": "by the sea",
               "water": "near running water", "fire": "next to a crackling fire", "thunder": "during a thunderstorm",
               "ambience": "with {bg} in the background", "insect": "with {bg} in the background"}
FOREGROUNDS = {"dog", "speech", "footsteps", "horse", "farm animal", "bird", "siren", "engine", "bell", "telephone",
               "knock", "scream", "horn", "applause", "door", "wild animal", "beep", "tools", "whistle", "clock"}


@dataclasses.dataclass
class SoundBuildConfig(Config):
    out_dir: str = "datasets/sounds"
    seed: int = 0
    limit: int | None = None  # at most this many source jobs (clips + synth + speech), mixes scale along
    sample_rate: int = 32000
    clip_seconds: float = 10.0
    min_seconds: float = 0.25
    sources: tuple[str, ...] = sources.DEFAULT_SFX
    synth_per_class: int = 30  # per synthesiser in synth_sounds.GENERATORS
    speech: int = 200
    mixes: int = 400
    valid_fraction: float = 0.03
    eval_fraction: float = 0.07
    target_lufs: float = -20.0
    workers: int = 2
    force: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if self.sample_rate < 8000 or self.workers < 1 or self.clip_seconds <= self.min_seconds:
            raise ValueError("need sample_rate >= 8000, workers >= 1 and clip_seconds > min_seconds")
        if min(self.synth_per_class, self.speech, self.mixes) < 0:
            raise ValueError("synth_per_class, speech and mixes must be >= 0")
        if self.valid_fraction + self.eval_fraction >= 0.5:
            raise ValueError("valid_fraction + eval_fraction must stay below 0.5")


@dataclasses.dataclass
class SoundJob:
    index: int
    kind: str  # "clip" | "synth" | "speech" | "mix"
    split: str
    seed: int
    config: dict
    source: str = ""
    container: str | None = None  # zip/pk3 archive holding `member`
    member: str = ""
    caption: str = ""
    sound_class: str = ""
    labels: tuple[str, ...] = ()
    generator: str = ""
    mix: dict = dataclasses.field(default_factory=dict)


def scan_source(name: str) -> list[tuple[str | None, str]]:
    """(archive or None, file) pairs of one installed SFX source, in a stable order."""
    root = sources.get_source(name).require()
    if root.is_file() and root.suffix in (".zip", ".pk3"):
        with zipfile.ZipFile(root) as z:
            members = [m for m in z.namelist() if m.lower().endswith((".ogg", ".wav", ".flac"))]
        if name == "0ad":
            members = [m for m in members if m.startswith("audio/") and not m.startswith("audio/music/")]
        return [(str(root), m) for m in sorted(members)]
    files = [p for p in root.rglob("*") if p.suffix.lower() in (".ogg", ".wav", ".flac")]
    return [(None, str(p)) for p in sorted(files)]


def plan_sounds(cfg: SoundBuildConfig) -> list[SoundJob]:
    from .synth_sounds import GENERATORS

    found = sources.require_all(list(cfg.sources)) if cfg.sources else {}
    worker_cfg = {k: getattr(cfg, k) for k in ("out_dir", "sample_rate", "clip_seconds", "min_seconds", "target_lufs")}
    jobs: list[SoundJob] = []
    split = lambda key: build_util.split_of(key, cfg.seed, cfg.valid_fraction, cfg.eval_fraction)  # noqa: E731
    for name in found:
        for container, member in scan_source(name):
            label = label_path(name, member)
            if label is None:
                continue
            key = f"{name}:{member}"
            jobs.append(SoundJob(len(jobs), "clip", split(key), build_util.job_seed(cfg.seed, key), worker_cfg,
                                 source=name, container=container, member=member, caption=label.caption,
                                 sound_class=label.sound_class, labels=label.labels))
    for gen in sorted(GENERATORS):
        for i in range(cfg.synth_per_class):
            key = f"synth:{gen}:{i}"
            jobs.append(SoundJob(len(jobs), "synth", split(key), build_util.job_seed(cfg.seed, key), worker_cfg,
                                 source="synth", generator=gen))
    if cfg.speech:
        from .speech import espeak_binary

        espeak_binary()  # fail early with the install hint
    for i in range(cfg.speech):
        key = f"speech:{i}"
        jobs.append(SoundJob(len(jobs), "speech", split(key), build_util.job_seed(cfg.seed, key), worker_cfg,
                             source="espeak_ng"))
    if cfg.limit is not None and cfg.limit < len(jobs):
        rng = random.Random(cfg.seed)
        jobs = sorted(rng.sample(jobs, cfg.limit), key=lambda j: j.index)
    return jobs


_ARCHIVES: dict[tuple[int, str], zipfile.ZipFile] = {}


def _read_source(job: SoundJob) -> tuple[np.ndarray, int]:
    import soundfile as sf

    if job.container:
        key = (os.getpid(), job.container)  # one handle per process: forked handles share offsets
        if key not in _ARCHIVES:
            _ARCHIVES[key] = zipfile.ZipFile(job.container)
        data = io.BytesIO(_ARCHIVES[key].read(job.member))
        audio, sr = sf.read(data, dtype="float32", always_2d=True)
    else:
        audio, sr = sf.read(job.member, dtype="float32", always_2d=True)
    return audio.mean(axis=1), sr


def _resample(audio: np.ndarray, sr: int, target: int) -> np.ndarray:
    if sr == target:
        return audio
    import soxr

    return soxr.resample(audio, sr, target, quality="HQ").astype(np.float32)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "x"


def make_sound_job(job: SoundJob) -> dict[str, Any]:
    """Worker: produce one clip (or its chunks), write it; returns manifest rows and sidecars."""
    cfg = job.config
    sr = cfg["sample_rate"]
    rng = random.Random(job.seed)
    extra: dict[str, Any] = {}
    try:
        if job.kind == "clip":
            audio, file_sr = _read_source(job)
            audio = _resample(audio, file_sr, sr)
            caption, sound_class, labels = job.caption, job.sound_class, list(job.labels)
            extra = {"source_path": job.member, "source_sample_rate": file_sr}
            licence = sources.get_source(job.source).licence
        elif job.kind == "synth":
            from .synth_sounds import synthesise

            seconds = rng.uniform(3.0, cfg["clip_seconds"])
            audio, caption, sound_class, labels = synthesise(job.generator, rng, sr, seconds)
            extra = {"generator": job.generator}
            licence = "generated by wavecraft (MIT)"
        elif job.kind == "speech":
            from .speech import speak

            audio, file_sr, caption, labels, extra = speak(rng)
            audio = _resample(audio, file_sr, sr)
            sound_class = "speech"
            licence = "generated with espeak-ng (output unrestricted)"
        else:
            audio, caption, sound_class, labels, extra, licence = _mix(job, rng, sr)
    except (OSError, RuntimeError, ValueError, WavecraftError) as err:
        return {"job": job.index, "error": f"{job.kind} {job.member or job.generator or job.index}: {err}", "rows": [], "infos": []}
    audio = build_util.trim_silence(audio, sr, threshold_db=-45.0)
    chunks = build_util.split_long(audio, sr, cfg["clip_seconds"], cfg["min_seconds"])
    rows, infos = [], []
    for c, chunk in enumerate(chunks):
        chunk, loudness = build_util.normalise_loudness(chunk, sr, cfg["target_lufs"])
        item_id = f"{job.kind}-{_slug(caption)}-{job.index:05d}" + (f"-{c}" if len(chunks) > 1 else "")
        info = {"description": caption, "sound_class": sound_class, "keywords": labels, "source": job.source,
                "material_licence": licence, "seed": job.seed, "job": job.index, "chunk": c,
                "loudness_before": round(loudness, 2), **extra, **build_util.audio_stats(chunk, sr)}
        rows.append(build_util.write_item(Path(cfg["out_dir"]), job.split, item_id, chunk, sr, info))
        infos.append(info)
    return {"job": job.index, "error": None if chunks else f"{job.kind} {job.member or job.index}: too short",
            "rows": rows, "infos": infos}


def _mix(job: SoundJob, rng: random.Random, sr: int):
    import soundfile as sf

    fg, _ = sf.read(job.mix["fg_path"], dtype="float32")
    bg, _ = sf.read(job.mix["bg_path"], dtype="float32")
    length = min(int(sr * job.config["clip_seconds"]), max(len(fg) + int(0.5 * sr), int(4 * sr)))
    reps = int(np.ceil(length / max(len(bg), 1)))
    bed = np.tile(bg, reps)[:length]
    out = np.zeros(length, dtype=np.float32)
    at = rng.randint(0, max(0, length - len(fg)))
    out[at : at + len(fg)] = fg[: length - at]
    snr_db = rng.uniform(3.0, 12.0)
    rms = lambda x: float(np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-9)  # noqa: E731
    out += bed * (rms(fg) / rms(bed) * 10 ** (-snr_db / 20))
    caption = job.caption
    extra = {"foreground": job.mix["fg_id"], "background": job.mix["bg_id"], "background_class": job.mix["bg_class"],
             "snr_db": round(snr_db, 1)}
    return out, caption, job.sound_class, list(job.labels), extra, job.mix["licence"]


def plan_mixes(cfg: SoundBuildConfig, infos: list[dict[str, Any]], first_index: int) -> list[SoundJob]:
    """Scene jobs pairing written foregrounds and backgrounds of the same split."""
    out = Path(cfg.out_dir)
    rng = random.Random(cfg.seed + 1)
    worker_cfg = {k: getattr(cfg, k) for k in ("out_dir", "sample_rate", "clip_seconds", "min_seconds", "target_lufs")}
    by_split = collections.defaultdict(lambda: ([], []))
    for info in sorted(infos, key=lambda i: i["id"]):
        if info.get("background"):
            continue
        fgs, bgs = by_split[info["split"]]
        if info["sound_class"] in FOREGROUNDS and info["duration"] <= cfg.clip_seconds - 1:
            fgs.append(info)
        elif info["sound_class"] in BACKGROUNDS and info["duration"] >= 2.0:
            bgs.append(info)
    jobs = []
    total = sum(len(f) for f, b in by_split.values() if b)
    for split, (fgs, bgs) in sorted(by_split.items()):
        if not fgs or not bgs or not total:
            continue
        for _ in range(round(cfg.mixes * len(fgs) / total)):
            fg, bg = rng.choice(fgs), rng.choice(bgs)
            phrase = BACKGROUNDS[bg["sound_class"]].format(bg=bg["description"])
            caption = f"{fg['description']} {phrase}"
            licences = " + ".join(sorted({fg["material_licence"], bg["material_licence"]}))
            path = lambda i: str(out / i["split"] / "audio" / f"{i['id']}.wav")  # noqa: E731
            jobs.append(SoundJob(first_index + len(jobs), "mix", split, rng.getrandbits(32), worker_cfg, source="mix",
                                 caption=caption, sound_class=fg["sound_class"],
                                 labels=tuple(fg["keywords"]) + tuple(bg["keywords"]),
                                 mix={"fg_path": path(fg), "bg_path": path(bg), "fg_id": fg["id"], "bg_id": bg["id"],
                                      "bg_class": bg["sound_class"], "licence": licences}))
    return jobs


def build_sounds(cfg: SoundBuildConfig) -> dict[str, Any]:
    started = time.time()
    jobs = plan_sounds(cfg)
    if not jobs:
        raise WavecraftError("nothing to build: no sources, --synth-per-class 0 and --speech 0")
    out = build_util.prepare_out_dir(cfg.out_dir, cfg.force)
    rows, infos, failures = [], [], []
    for result in build_util.run_jobs(make_sound_job, jobs, cfg.workers, "making sounds", cfg.progress):
        rows += result["rows"]
        infos += result["infos"]
        if result["error"]:
            failures.append({"job": result["job"], "error": result["error"]})
    mixes = plan_mixes(cfg, infos, len(jobs)) if cfg.mixes else []
    for result in build_util.run_jobs(make_sound_job, mixes, cfg.workers, "mixing scenes", cfg.progress):
        rows += result["rows"]
        infos += result["infos"]
    counts = build_util.write_manifests(out, rows)
    build_util.write_jsonl(out / "eval" / "prompts.jsonl", (
        {k: i.get(k) for k in ("id", "description", "sound_class", "keywords", "source", "seed")}
        for i in sorted((i for i in infos if i["split"] == "eval"), key=lambda i: i["id"])))
    hours = collections.Counter()
    for i in infos:
        hours[i["split"]] += i["duration"] / 3600
    used = sorted(set(cfg.sources) | ({"espeak_ng"} if cfg.speech else set()))
    summary = {
        "kind": "sounds", "config": cfg.to_dict(), "items": counts, "hours": {k: round(v, 3) for k, v in hours.items()},
        "by_source": dict(collections.Counter(i["source"] for i in infos).most_common()),
        "by_class": dict(collections.Counter(i["sound_class"] for i in infos).most_common()),
        "failures": failures, "wall_seconds": round(time.time() - started, 1), "sources": sources.licence_table(used),
    }
    (out / "build_info.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary
