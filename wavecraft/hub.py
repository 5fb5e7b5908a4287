"""Find checkpoints on disk: a local file or folder, or a Hugging Face repo id in the local cache.

Nothing here touches the network. A repo id such as `facebook/encodec_32khz` is looked up in the
Hugging Face cache (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`) in the
layout `huggingface-cli download` creates: `models--facebook--encodec_32khz/snapshots/<rev>/`.
When it is not there, the error says what to download and where to put it.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

from .errors import CheckpointError

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache folder, following huggingface_hub's environment variables."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def is_repo_id(name: str) -> bool:
    return bool(_REPO_ID.match(name)) and ".." not in name


def repo_cache_folder(repo_id: str) -> Path:
    return hf_cache_dir() / ("models--" + repo_id.replace("/", "--"))


def cached_snapshot(repo_id: str, revision: str = "main") -> Path | None:
    """The snapshot folder of `repo_id` in the local cache (the revision `refs/<revision>` points
    to, else the newest snapshot), or None."""
    folder = repo_cache_folder(repo_id)
    snapshots = folder / "snapshots"
    if not snapshots.is_dir():
        return None
    ref = folder / "refs" / revision
    if ref.is_file():
        snap = snapshots / ref.read_text().strip()
        if snap.is_dir():
            return snap
    if (snapshots / revision).is_dir():  # a commit hash given as revision
        return snapshots / revision
    candidates = [p for p in snapshots.iterdir() if p.is_dir()]
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


def repo_id_from_path(path: Path) -> str | None:
    """`facebook/encodec_32khz` for a path inside `.../models--facebook--encodec_32khz/snapshots/<rev>`."""
    for part in Path(path).absolute().parts:
        if part.startswith("models--") and part.count("--") >= 2:
            owner, _, name = part[len("models--"):].partition("--")
            return f"{owner}/{name}"
    return None


def display_name(name_or_path: str | os.PathLike, resolved: Path) -> str:
    """The identity to show and store: the repo id when there is one, else the folder name."""
    text = str(name_or_path)
    if not Path(text).expanduser().exists() and is_repo_id(text):
        return text
    repo = repo_id_from_path(resolved)
    if repo:
        return repo
    folder = (resolved if resolved.is_dir() else resolved.parent).absolute()
    return folder.name or str(folder)


def resolve(name_or_path: str | os.PathLike, required: Sequence[str] = (), what: str = "checkpoint") -> Path:
    """Return the local path for a file, folder or cached repo id; raise CheckpointError otherwise.
    `required` lists files that must exist inside a cached repo (any one of each `a|b` group)."""
    text = os.fspath(name_or_path)
    path = Path(text).expanduser()
    if path.exists():
        return path
    if not is_repo_id(text):
        raise CheckpointError(f"{what} {text!r}: no such file or folder")
    cache_folder = repo_cache_folder(text)
    snap = cached_snapshot(text)
    if snap is None:
        raise CheckpointError(
            f"{what} {text!r} is not a local path and is not in the Hugging Face cache ({cache_folder}); "
            f"wavecraft never downloads. On a machine with internet access run "
            f"`huggingface-cli download {text}` and copy {cache_folder.name} into {cache_folder.parent} "
            f"(or set HF_HUB_CACHE to a cache that has it), or download the repo's files into a folder "
            f"and pass that folder's path instead"
        )
    for group in required:
        options = group.split("|")
        if not any((snap / name).exists() for name in options):  # exists() is False for broken links
            raise CheckpointError(
                f"{what} {text!r}: the cached snapshot {snap} lacks {' or '.join(options)} (incomplete download?); "
                f"run `huggingface-cli download {text}` again on a machine with internet access and copy it here"
            )
    return snap
