"""Atomic, resumable training checkpoints.

A checkpoint is one `torch.save`d dict of plain data (tensors, numbers, strings, lists, dicts), so it
loads with `torch.load(weights_only=True)`: no pickled classes, nothing that runs code on load.
Writes go to a temporary file in the same folder, are flushed to disk and then renamed over the
target, so a crash mid-save leaves the previous checkpoint intact.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT_VERSION = 1


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write `state` to `path` atomically (temp file + fsync + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save({"format_version": FORMAT_VERSION, **state}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by `save_checkpoint` (weights_only: no code runs on load)."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types for corrupt/foreign files
        raise CheckpointError(f"cannot load training checkpoint {path}: {err}") from None
    if not isinstance(state, dict) or "format_version" not in state:
        raise CheckpointError(f"{path} is not a wavecraft training checkpoint")
    if state["format_version"] > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer wavecraft (format {state['format_version']})")
    return state


def rng_state() -> dict[str, Any]:
    """Every RNG a training step may draw from, as weights_only-loadable data."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": _python_rng_to_plain(random.getstate())}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_python_rng_from_plain(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _python_rng_to_plain(state: tuple) -> list:
    version, internal, gauss = state
    return [version, torch.tensor(internal, dtype=torch.int64), gauss]


def _python_rng_from_plain(plain: list) -> tuple:
    version, internal, gauss = plain
    return (int(version), tuple(int(v) for v in internal.tolist()), gauss)
