"""wavecraft's own format for MusicGen / AudioGen models (built on `native.save_native`).

    folder/config.json         {"format": "wavecraft", "kind": "musicgen" | "audiogen", "config": MusicGenConfig}
    folder/model.safetensors   lm.*  (the LM, our key names)  +  conditioners.<attr>.*  (projections, tables)
    folder/codec/              the codec, in the same format (kind "codec"); or, when
                               extra["codec"] names a folder relative to this one, that folder
                               (models that share one codec ship it once)
    folder/text_encoder_<attr>/  a text encoder that came inside a checkpoint (e.g. the T5 of a
                               Hugging Face MusicGen folder), so the saved model loads offline

Frozen encoders found elsewhere (t5-base in the HF cache, the packaged MiniLM) are referenced by
name, not copied.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ...errors import CheckpointError
from ...lm.model import LMModel
from ..components import InterleavedStereoCodec, build_conditioner, conditioner_spec
from .native import build_lm, load_native, load_state, save_codec, save_native

if TYPE_CHECKING:
    from ..musicgen import MusicGen

KINDS = ("musicgen", "audiogen")


def save_model(model: "MusicGen", folder: str | Path, overwrite: bool = False) -> Path:
    folder = Path(folder)
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise CheckpointError(f"model folder {folder} exists and is not empty; choose another folder or pass overwrite=True")
    specs = {}
    state = {f"lm.{k}": v for k, v in model.lm.state_dict().items()}
    embedded = []
    for attr, cond in model.conditioners.items():
        spec = conditioner_spec(cond)
        if attr in model.embedded_encoders:
            sub = f"text_encoder_{attr}"
            embedded.append((sub, cond))
            spec["name" if spec["type"] == "t5" else "path"] = sub
        specs[attr] = spec
        state.update({f"conditioners.{attr}.{k}": v for k, v in cond.state_dict().items()})
    config = model.config.replace(conditioners=specs, lm=model.lm.cfg)
    if folder.is_dir() and overwrite:
        for sub in ["codec", *(s for s, _ in embedded)]:
            if (folder / sub).is_dir():
                shutil.rmtree(folder / sub)
    save_native(folder, model.config.kind, config, state, {"name": model.name}, overwrite=overwrite)
    codec = model.codec.mono if isinstance(model.codec, InterleavedStereoCodec) else model.codec
    save_codec(codec, folder / "codec")
    for sub, cond in embedded:
        cond.encoder.save_pretrained(str(folder / sub))  # type: ignore[attr-defined]
        cond.tokenizer.save_pretrained(str(folder / sub))  # type: ignore[attr-defined]
    return folder


def load_native_model(folder: str | Path, name: str | None = None) -> "MusicGen":
    from ..audiogen import AudioGen
    from ..musicgen import MusicGen, MusicGenConfig
    from .native import codec_from_native

    folder = Path(folder)
    kind, cfg_dict, state, extra = load_native(folder)
    if kind not in KINDS:
        raise CheckpointError(f"{folder} holds a wavecraft {kind!r} checkpoint, not a MusicGen/AudioGen model")
    config = MusicGenConfig.from_dict(cfg_dict)
    codec_ref = extra.get("codec", "codec")
    if not isinstance(codec_ref, str) or not (folder / codec_ref).is_dir():
        if codec_ref == "codec":
            raise CheckpointError(f"{folder} is incomplete: the codec/ sub-folder is missing")
        raise CheckpointError(f"{folder} is incomplete: its codec folder {codec_ref!r} is missing (a model that "
                              "shares another model's codec: copy that folder alongside, or save the loaded "
                              "model with save_pretrained, which writes a codec/ of its own)")
    codec = codec_from_native(folder / codec_ref)
    if config.stereo:
        codec = InterleavedStereoCodec(codec)
    lm = build_lm(config.lm, _sub(state, "lm"), f"{folder} (LM)")
    conditioners = {}
    for attr, spec in config.conditioners.items():
        cond = build_conditioner(spec, folder)
        load_state(cond, _sub(state, f"conditioners.{attr}"), f"{folder} (conditioner {attr!r})")
        conditioners[attr] = cond
    cls = AudioGen if kind == "audiogen" else MusicGen
    check_codec(lm, codec, folder)
    return cls(name or extra.get("name") or folder.name, config, lm, codec, conditioners)


def check_codec(lm: LMModel, codec: torch.nn.Module, where: Path | str) -> None:
    """The codec must speak the LM's vocabulary; use only as many codebooks as the LM models
    (audiocraft's `set_num_codebooks(lm.n_q)`)."""
    mono = codec.mono if isinstance(codec, InterleavedStereoCodec) else codec
    want = lm.cfg.n_q // (2 if mono is not codec else 1)
    if hasattr(mono, "set_num_codebooks") and mono.num_codebooks != want and want <= mono.total_codebooks:
        mono.set_num_codebooks(want)
    if codec.cardinality != lm.cfg.card or codec.num_codebooks != lm.cfg.n_q:
        raise CheckpointError(
            f"{where}: the LM expects {lm.cfg.n_q} codebooks of {lm.cfg.card} entries but the codec gives "
            f"{codec.num_codebooks} of {codec.cardinality}"
        )


def _sub(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    n = len(prefix) + 1
    return {k[n:]: v for k, v in state.items() if k.startswith(prefix + ".")}
