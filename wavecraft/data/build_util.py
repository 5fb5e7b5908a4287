"""Shared steps of the data builders: splits, clean-up of audio, writing items, running in parallel.

Both builders produce the same layout, one folder per split so evaluation material can never leak
into training by accident:

    OUT_DIR/train/data.jsonl   OUT_DIR/train/audio/<id>.wav + <id>.json (sidecar)
    OUT_DIR/valid/...          OUT_DIR/eval/...   OUT_DIR/eval/prompts.jsonl   OUT_DIR/build_info.json

Manifest paths are relative to the manifest's folder (see data/manifest.py), so a built set can
be moved or copied as a whole.
"""
from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import shutil
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from ..errors import WavecraftError

SPLITS = ("train", "valid", "eval")
_OWNED = ("train", "valid", "eval", "build_info.json")


def split_of(key: str, seed: int, valid_fraction: float, eval_fraction: float) -> str:
    """Deterministic split of an item from a stable key (a work id, a source path, a job number).

    A hash rather than a shuffle: adding items or sources later never moves existing ones between
    splits, and every render of one score lands in the same split.
    """
    digest = hashlib.sha1(f"{seed}:{key}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64
    if u < eval_fraction:
        return "eval"
    if u < eval_fraction + valid_fraction:
        return "valid"
    return "train"


def job_seed(seed: int, key: str) -> int:
    return int.from_bytes(hashlib.sha1(f"job:{seed}:{key}".encode()).digest()[:4], "big")


def prepare_out_dir(out_dir: str | Path, force: bool) -> Path:
    """Create OUT_DIR; an existing build there is replaced only with force, other files never."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise WavecraftError(f"output path {out} exists and is not a folder")
    existing = [out / name for name in _OWNED if (out / name).exists()]
    if existing and not force:
        raise WavecraftError(f"{out} already holds a build ({existing[0].name}); pass --force to rebuild it from scratch")
    for path in existing:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return out


def frame_rms_db(audio: np.ndarray, sample_rate: int, frame_seconds: float = 0.02) -> np.ndarray:
    frame = max(1, int(sample_rate * frame_seconds))
    n = len(audio) // frame
    if n == 0:
        return np.full(1, -120.0)
    power = np.mean(np.square(audio[: n * frame].reshape(n, frame), dtype=np.float64), axis=1)
    return 10.0 * np.log10(power + 1e-12)


def trim_silence(audio: np.ndarray, sample_rate: int, threshold_db: float = -50.0, pad_seconds: float = 0.05) -> np.ndarray:
    """Cut leading/trailing frames quieter than `threshold_db` below the loudest frame."""
    if audio.size == 0:
        return audio
    frame = max(1, int(sample_rate * 0.02))
    levels = frame_rms_db(audio, sample_rate)
    loud = np.nonzero(levels > max(levels.max() + threshold_db, -100.0))[0]  # digital silence is never "loud"
    if loud.size == 0:
        return audio[:0]
    pad = int(pad_seconds * sample_rate)
    start = max(0, loud[0] * frame - pad)
    end = min(len(audio), (loud[-1] + 1) * frame + pad)
    return audio[start:end]


def normalise_loudness(audio: np.ndarray, sample_rate: int, target_lufs: float, peak_db: float = -1.0) -> tuple[np.ndarray, float]:
    """Scale to `target_lufs` (BS.1770 integrated), but never let the peak pass `peak_db` dBFS.

    Returns (audio, measured loudness before scaling). Short or near-silent clips fall back to RMS.
    """
    import torch

    from ..loudness import integrated_loudness

    x = np.asarray(audio, dtype=np.float32)
    peak = float(np.abs(x).max()) if x.size else 0.0
    if peak < 1e-6:
        return x, -math.inf
    loudness = -math.inf
    if len(x) >= int(0.4 * sample_rate):
        loudness = integrated_loudness(torch.from_numpy(x)[None], sample_rate)
    if not math.isfinite(loudness):
        loudness = 20.0 * math.log10(float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) + 1e-12) - 0.691
    gain = 10.0 ** ((target_lufs - loudness) / 20.0)
    gain = min(gain, 10.0 ** (peak_db / 20.0) / peak)  # a limiter would colour the sound; scaling down does not
    return (x * gain).astype(np.float32), float(loudness)


def split_long(audio: np.ndarray, sample_rate: int, max_seconds: float, min_seconds: float) -> list[np.ndarray]:
    """Equal chunks no longer than max_seconds; a clip shorter than min_seconds gives nothing."""
    n = len(audio)
    if n < int(min_seconds * sample_rate):
        return []
    limit = int(max_seconds * sample_rate)
    if n <= limit:
        return [audio]
    parts = math.ceil(n / limit)
    size = math.ceil(n / parts)
    chunks = [audio[i : i + size] for i in range(0, n, size)]
    return [c for c in chunks if len(c) >= int(min_seconds * sample_rate)]


def write_item(out_dir: Path, split: str, item_id: str, audio: np.ndarray, sample_rate: int,
               info: dict[str, Any]) -> dict[str, Any]:
    """Write <split>/audio/<id>.wav (16-bit PCM) and its sidecar <id>.json; return the manifest row."""
    import soundfile as sf

    folder = out_dir / split / "audio"
    folder.mkdir(parents=True, exist_ok=True)
    wav_path = folder / f"{item_id}.wav"
    sf.write(str(wav_path), np.clip(audio, -1.0, 1.0), sample_rate, subtype="PCM_16")
    duration = len(audio) / sample_rate
    info.update(duration=round(duration, 4), sample_rate=sample_rate, split=split, id=item_id)  # caller keeps it
    (folder / f"{item_id}.json").write_text(json.dumps(info, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return {"split": split, "path": f"audio/{item_id}.wav", "duration": round(duration, 4), "sample_rate": sample_rate}


def write_manifests(out_dir: Path, rows: list[dict[str, Any]]) -> dict[str, int]:
    """<split>/data.jsonl for every split (sorted by path, so a rebuild gives identical files)."""
    from .manifest import AudioMeta, write_manifest

    counts = {}
    for split in SPLITS:
        mine = sorted((r for r in rows if r["split"] == split), key=lambda r: r["path"])
        counts[split] = len(mine)
        if not mine:
            continue
        metas = [AudioMeta(path=r["path"], duration=r["duration"], sample_rate=r["sample_rate"]) for r in mine]
        write_manifest(metas, out_dir / split / "data.jsonl", force=True)
    return counts


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _init_worker() -> None:
    try:
        import torch

        torch.set_num_threads(1)  # one process per core: no nested thread pools
    except ImportError:
        pass


def run_jobs(fn: Callable[[Any], Any], jobs: list[Any], workers: int, desc: str, progress: bool = True) -> Iterator[Any]:
    """Yield fn(job) for every job (in completion order) from `workers` processes."""
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc=desc, unit="item", file=sys.stderr, dynamic_ncols=True)
    try:
        if workers <= 1:
            _init_worker()
            for job in jobs:
                yield fn(job)
                if bar is not None:
                    bar.update(1)
        else:
            # fork on Linux: no re-import of the caller's __main__ (spawn re-runs scripts without a
            # main guard) and no per-worker start-up cost. The parent never runs torch before this.
            method = "fork" if sys.platform.startswith("linux") else "spawn"
            ctx = multiprocessing.get_context(method)
            with ctx.Pool(workers, initializer=_init_worker) as pool:
                for result in pool.imap_unordered(fn, jobs, chunksize=1):
                    yield result
                    if bar is not None:
                        bar.update(1)
    finally:
        if bar is not None:
            bar.close()


def audio_stats(audio: np.ndarray, sample_rate: int) -> dict[str, float]:
    """Levels kept in the sidecar, so a build can be checked without listening to it."""
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if audio.size else 0.0
    return {"peak_db": round(20 * math.log10(peak + 1e-12), 2), "rms_db": round(20 * math.log10(rms + 1e-12), 2)}
