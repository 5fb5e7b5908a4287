"""Bundled models: short names -> folders in wavecraft's native format.

Empty until the project ships trained models. `resolve_bundled` returns None for unknown names
so loaders fall through to paths and Hugging Face repo ids.
"""
from __future__ import annotations

from pathlib import Path

# name -> folder (absolute, or relative to this package's directory)
BUNDLED: dict[str, str] = {}
# The model `wavecraft generate` uses when --model is not given (None: --model is required).
DEFAULT_MODEL: str | None = None


def resolve_bundled(name: str) -> Path | None:
    folder = BUNDLED.get(name)
    if folder is None:
        return None
    path = Path(folder)
    return path if path.is_absolute() else Path(__file__).resolve().parent / path


def bundled_names() -> list[str]:
    return sorted(BUNDLED)
