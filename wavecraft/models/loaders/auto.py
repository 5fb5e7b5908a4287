"""Load a MusicGen / AudioGen model from whatever the user points at.

Recognised, in order: a bundled model name (models/registry.py), a wavecraft folder
(config.json with "format": "wavecraft"), a Hugging Face MusicGen folder (config.json with
model_type musicgen / musicgen_melody), an audiocraft folder or file (state_dict.bin, with
compression_state_dict.bin next to it), and any of these as a repo id in the local Hugging Face
cache. Nothing is downloaded.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ... import hub
from ...errors import CheckpointError
from ..registry import bundled_names, resolve_bundled


def _model_type(folder: Path) -> tuple[str | None, str | None]:
    """(format, kind/model_type) from config.json, or (None, None)."""
    try:
        data = json.loads((folder / "config.json").read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None, None
    if not isinstance(data, dict):
        return None, None
    if data.get("format") == "wavecraft":
        return "wavecraft", data.get("kind")
    return "hf", data.get("model_type")


def load_model(name_or_path: str | os.PathLike, expected: type | None = None) -> Any:
    """Return a MusicGen or AudioGen (an instance of `expected` when given)."""
    text = os.fspath(name_or_path)
    if not text.strip():
        raise CheckpointError("model name is empty: give a model folder, a bundled name or a Hugging Face repo id")
    bundled = resolve_bundled(text)
    if bundled is not None:
        path, display = bundled, text
    else:
        try:
            path = hub.resolve(text, what="model")
        except CheckpointError as err:
            names = bundled_names()
            hint = f" Bundled models: {', '.join(names)}." if names else ""
            raise CheckpointError(f"{err}.{hint}") from None
        display = hub.display_name(text, path)
    model = _load_path(path, display)
    if expected is not None and not isinstance(model, expected):
        raise CheckpointError(
            f"{display} is a {type(model).__name__} model; load it with {type(model).__name__}.get_pretrained"
        )
    return model


def _load_path(path: Path, name: str) -> Any:
    from .lm_audiocraft import load_audiocraft_model
    from .lm_hf import load_hf_model
    from .musicgen_native import load_native_model

    if path.is_file():
        if path.suffix == ".bin" and path.name != "compression_state_dict.bin":
            return load_audiocraft_model(path, name)
        if path.name == "config.json":
            path = path.parent
        else:
            raise CheckpointError(f"{path}: not a model checkpoint (give the model's folder, or its state_dict.bin)")
    fmt, kind = _model_type(path)
    if fmt == "wavecraft":
        if kind == "codec":
            raise CheckpointError(f"{path} holds a codec, not a generation model (use `wavecraft.load_codec`)")
        return load_native_model(path, name)
    if fmt == "hf" and kind in ("musicgen", "musicgen_melody"):
        return load_hf_model(path, name)
    if (path / "state_dict.bin").is_file():
        return load_audiocraft_model(path / "state_dict.bin", name)
    if fmt == "hf":
        raise CheckpointError(f"{path}/config.json describes a {kind!r} model; wavecraft loads MusicGen and AudioGen models")
    raise CheckpointError(
        f"{path} holds no generation model: expected a wavecraft folder (config.json + model.safetensors + codec/), "
        "a Hugging Face MusicGen folder (config.json + model.safetensors + tokenizer files), or an audiocraft folder "
        "(state_dict.bin + compression_state_dict.bin)"
    )
