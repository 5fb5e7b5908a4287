"""Checkpoint loaders: translate foreign formats into wavecraft modules.

`load_codec` recognises, in this order: a wavecraft folder (`config.json` with "format":
"wavecraft", or such a folder's `codec/` sub-folder), a Hugging Face EnCodec or MusicGen folder
(`config.json` + safetensors/bin weights), and an audiocraft `compression_state_dict.bin` (the file
or a folder holding it). Names that are not local paths are looked up in the Hugging Face cache.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ... import hub
from ...errors import CheckpointError

if TYPE_CHECKING:
    import torch

    from ...codec.model import Codec

_TORCH_SUFFIXES = {".bin", ".pt", ".pth", ".th", ".ckpt"}
_HF_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


def _config_json(folder: Path) -> dict | None:
    try:
        data = json.loads((folder / "config.json").read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _load_folder(folder: Path, name: str, depth: int = 0) -> "Codec":
    from .codec_audiocraft import load_audiocraft_codec
    from .codec_hf import load_hf_codec
    from .native import codec_from_native

    cfg = _config_json(folder)
    if cfg is not None and cfg.get("format") == "wavecraft":
        if cfg.get("kind") != "codec" and (folder / "codec").is_dir():
            return codec_from_native(folder / "codec", name)
        return codec_from_native(folder, name)
    has_weights = any((folder / f).is_file() for f in _HF_WEIGHTS)
    if cfg is not None and has_weights and str(cfg.get("model_type", "")).startswith(("encodec", "musicgen")):
        return load_hf_codec(folder, name)
    if (folder / "compression_state_dict.bin").is_file():
        return load_audiocraft_codec(folder / "compression_state_dict.bin", name, depth)
    if cfg is not None and has_weights:
        raise CheckpointError(f"{folder}/config.json describes a {cfg.get('model_type', 'unknown')!r} model, not a codec")
    raise CheckpointError(
        f"{folder} holds no codec checkpoint: expected a wavecraft folder (config.json + model.safetensors), "
        f"a Hugging Face EnCodec/MusicGen folder (config.json + model.safetensors or pytorch_model.bin), "
        f"or an audiocraft compression_state_dict.bin"
    )


def load_codec_path(name_or_path: "str | os.PathLike", depth: int = 0) -> "Codec":
    """Resolve and load, without moving devices; `depth` counts audiocraft `pretrained` pointers
    followed so far (a pointer cycle must not recurse forever)."""
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise CheckpointError(f"load_codec expects a name or a path, got {type(name_or_path).__name__}")
    if depth > 3:
        raise CheckpointError(f"{name_or_path}: too many nested 'pretrained' pointers in compression_state_dict.bin files")
    from ..registry import resolve_bundled

    bundled = resolve_bundled(os.fspath(name_or_path))
    if bundled is not None:  # a bundled model's name stands for the codec inside it
        path, name = bundled, os.fspath(name_or_path)
    else:
        path = hub.resolve(name_or_path, what="codec")
        name = hub.display_name(name_or_path, path)
    if path.is_dir():
        return _load_folder(path, name, depth)
    if path.name == "config.json" or path.suffix == ".safetensors":
        return _load_folder(path.parent, name, depth)
    if path.suffix in _TORCH_SUFFIXES:
        if path.name == "pytorch_model.bin" and (path.parent / "config.json").is_file():
            return _load_folder(path.parent, name, depth)
        from .codec_audiocraft import load_audiocraft_codec

        return load_audiocraft_codec(path, name, depth)
    raise CheckpointError(f"{path}: not a recognised codec checkpoint file (expected a folder, .safetensors or .bin)")


def load_codec(name_or_path: "str | os.PathLike | Codec", device: "str | torch.device | None" = None) -> "Codec":
    """Load a codec from disk (see the module docstring); returns it in eval mode on `device`."""
    from ...codec.model import Codec

    codec = name_or_path if isinstance(name_or_path, Codec) else load_codec_path(name_or_path)
    if device is not None:
        try:
            codec = codec.to(device)
        except (RuntimeError, AssertionError) as err:
            raise CheckpointError(f"cannot move codec to device {device!r}: {err}") from None
    return codec.eval()


__all__ = ["load_codec", "load_codec_path"]
