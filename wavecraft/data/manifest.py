"""Dataset manifests in the format audiocraft users already have.

A manifest is `data.jsonl` (optionally gzipped): one JSON object per audio file with `path`,
`duration` (seconds), `sample_rate`, and optionally `amplitude`, `weight` and `info_path`.
Descriptive metadata (description, genre, moods, ...) lives in a sidecar JSON next to the audio:
`song.wav` -> `song.json` (audiocraft's convention), or `song.wav.json`, or the manifest's `info_path`.

Relative paths in a manifest are resolved against the manifest's own folder, so a dataset folder
can be moved as a whole.
"""
from __future__ import annotations

import dataclasses
import gzip
import io
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterable

from ..errors import WavecraftError

logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".aiff", ".aif", ".au")


class ManifestError(WavecraftError):
    """A manifest file is missing, malformed or names no usable audio."""


@dataclasses.dataclass
class AudioMeta:
    """One manifest line."""

    path: str
    duration: float
    sample_rate: int
    amplitude: float | None = None
    weight: float | None = None
    info_path: str | None = None

    def to_json_dict(self) -> dict[str, Any]:
        # Optional fields are written only when set, like audiocraft's own manifests.
        out: dict[str, Any] = {"path": self.path, "duration": self.duration, "sample_rate": self.sample_rate}
        for key in ("amplitude", "weight", "info_path"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


def _open_text(path: Path, mode: str) -> io.TextIOBase:
    if path.name.endswith(".gz"):
        return gzip.open(path, mode + "t", encoding="utf-8")  # type: ignore[return-value]
    return open(path, mode, encoding="utf-8")


def _parse_line(line: str, where: str, root: Path) -> AudioMeta:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as err:
        raise ManifestError(f"{where}: not valid JSON ({err.msg})") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: each line must be a JSON object")
    missing = [k for k in ("path", "duration", "sample_rate") if k not in data]
    if missing:
        raise ManifestError(f"{where}: missing field(s) {missing}; every line needs path, duration, sample_rate")
    try:
        path = str(data["path"])
        if not os.path.isabs(path):
            path = str(root / path)
        info = data.get("info_path")
        if info is not None and not os.path.isabs(str(info)):
            info = str(root / str(info))
        weight = data.get("weight")
        amplitude = data.get("amplitude")
        meta = AudioMeta(
            path=path,
            duration=float(data["duration"]),
            sample_rate=int(data["sample_rate"]),
            amplitude=None if amplitude is None else float(amplitude),
            weight=None if weight is None else float(weight),
            info_path=None if info is None else str(info),
        )
    except (TypeError, ValueError) as err:
        raise ManifestError(f"{where}: bad value ({err})") from None
    if meta.duration < 0 or meta.sample_rate <= 0 or (meta.weight is not None and meta.weight < 0):
        raise ManifestError(f"{where}: duration/weight must be >= 0 and sample_rate > 0")
    return meta


def read_manifest(path: str | Path) -> list[AudioMeta]:
    """Read a `.jsonl` or `.jsonl.gz` manifest (or a folder holding `data.jsonl[.gz]`)."""
    path = Path(path)
    if path.is_dir():
        for name in ("data.jsonl", "data.jsonl.gz"):
            if (path / name).is_file():
                path = path / name
                break
        else:
            raise ManifestError(f"no data.jsonl or data.jsonl.gz in folder {path}")
    if not path.is_file():
        raise ManifestError(f"manifest not found: {path} (create one with `wavecraft data index DIR -o {path}`)")
    metas = []
    root = path.parent.resolve()
    try:
        with _open_text(path, "r") as f:
            for number, line in enumerate(f, 1):
                if line.strip():
                    metas.append(_parse_line(line, f"{path}:{number}", root))
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise ManifestError(f"cannot read manifest {path}: {err}") from None
    if not metas:
        raise ManifestError(f"manifest {path} lists no audio files")
    return metas


def merge_manifests(inputs: Iterable[str | Path], output: str | Path,
                    force: bool = False) -> tuple[Path, int, float]:
    """Join manifests into `output` (paths relative to its folder); returns (path, files, hours)."""
    metas: list[AudioMeta] = []
    for source in inputs:
        metas.extend(read_manifest(source))
    out = write_manifest(metas, output, force=force, relative=True)
    return out, len(metas), sum(m.duration for m in metas) / 3600


def write_manifest(metas: Iterable[AudioMeta], path: str | Path, force: bool = False, relative: bool = False) -> Path:
    """Write a manifest atomically; refuses to replace an existing file unless `force`."""
    path = Path(path)
    if path.exists() and not force:
        raise ManifestError(f"{path} already exists; pass force (--force) to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    root = path.parent.resolve()
    tmp = path.with_name(path.name + ".tmp")
    with _open_text(tmp, "w") as f:
        for meta in metas:
            line = meta.to_json_dict()
            if relative:
                for key in ("path", "info_path"):
                    if key in line:
                        line[key] = os.path.relpath(line[key], root)
            f.write(json.dumps(line) + "\n")
    os.replace(tmp, path)
    return path


def sidecar_path(meta: AudioMeta) -> Path | None:
    """Where the metadata JSON for `meta` lives, or None when there is none."""
    if meta.info_path:
        return Path(meta.info_path)
    audio = Path(meta.path)
    for candidate in (audio.with_suffix(".json"), audio.with_name(audio.name + ".json")):
        if candidate.is_file():
            return candidate
    return None


def load_info(meta: AudioMeta) -> dict[str, Any] | None:
    """The sidecar metadata of a file as a dict; None if absent. Raises ManifestError if unreadable."""
    path = sidecar_path(meta)
    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ManifestError(f"metadata {path} is unreadable: {err}") from None
    if not isinstance(data, dict):
        raise ManifestError(f"metadata {path} must hold a JSON object")
    return data


def _probe(path: Path) -> AudioMeta:
    """Duration and sample rate of one file, from its header (no decoding)."""
    from ..audio import audio_info

    info = audio_info(path)
    if info.frames <= 0:
        raise RuntimeError("contains no samples")
    return AudioMeta(path=str(path.resolve()), duration=info.duration, sample_rate=info.sample_rate)


def find_audio_files(root: str | Path, extensions: tuple[str, ...] = AUDIO_EXTENSIONS) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        raise ManifestError(f"not a folder: {root}")
    found = [p for p in root.rglob("*") if p.suffix.lower() in extensions and p.is_file()]
    return sorted(found)


def index_directory(
    root: str | Path,
    workers: int = 4,
    progress: bool = False,
    extensions: tuple[str, ...] = AUDIO_EXTENSIONS,
) -> tuple[list[AudioMeta], list[tuple[str, str]]]:
    """Scan `root` for audio files in parallel.

    Returns (metas sorted by path, skipped) where skipped lists (path, reason) for every file that
    could not be read; those are logged as warnings, never fatal.
    """
    files = find_audio_files(root, extensions)
    metas: list[AudioMeta] = []
    skipped: list[tuple[str, str]] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(files), unit="file", desc="indexing")

    def probe(path: Path) -> tuple[Path, AudioMeta | None, str]:
        try:
            return path, _probe(path), ""
        except Exception as err:  # noqa: BLE001 - any decoder failure means "skip this file"
            return path, None, str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__

    # Header probing is I/O bound and libsndfile releases the GIL, so threads are enough.
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for path, meta, reason in pool.map(probe, files):
            if meta is None:
                logger.info("skipping unreadable audio %s: %s", path, reason)  # returned to the caller too
                skipped.append((str(path), reason))
            else:
                metas.append(meta)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return metas, skipped
