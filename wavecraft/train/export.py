"""Turn a training run into the inference format `load_codec` / `MusicGen.get_pretrained` read.

The export takes the run's latest checkpoint, prefers the EMA weights when the run kept an
average, and writes through the models' own save functions (wavecraft native format).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from .checkpoint import CHECKPOINT_NAME, load_checkpoint


def _inference_weights(model_state: dict[str, torch.Tensor], ema: dict[str, Any] | None,
                       prefix: str = "") -> dict[str, torch.Tensor]:
    """Model weights with the EMA averages substituted for the parameters it tracks."""
    state = dict(model_state)
    if ema:
        for key, value in ema["shadow"].items():
            if key in state:
                state[key] = value.to(state[key].dtype)
    n = len(prefix)
    return {k[n:]: v for k, v in state.items() if k.startswith(prefix)}


def codec_from_run(run_dir: str | Path) -> Any:
    """The codec a codec run has trained (EMA weights if kept), as a `Codec`."""
    from ..codec import Codec, CodecConfig

    state = load_checkpoint(Path(run_dir) / CHECKPOINT_NAME)
    if state.get("kind") != "codec":
        raise CheckpointError(f"{run_dir} is a {state.get('kind')} run, not a codec run")
    cfg = state["config"]
    codec = Codec(CodecConfig.from_dict(cfg["model"]), name=cfg.get("name", "codec"))
    codec.load_state_dict(_inference_weights(state["model"], state.get("ema")))
    return codec.eval()


def musicgen_from_run(run_dir: str | Path) -> Any:
    """The model an LM run has trained, as a `MusicGen` (or `AudioGen`) ready to generate."""
    from ..codec import load_codec
    from ..lm import LMModel
    from ..models.components import build_conditioner
    from ..models.loaders.musicgen_native import check_codec
    from ..models.musicgen import MusicGen, MusicGenConfig

    state = load_checkpoint(Path(run_dir) / CHECKPOINT_NAME)
    if state.get("kind") != "lm":
        raise CheckpointError(f"{run_dir} is a {state.get('kind')} run, not an LM run")
    cfg = state["config"]
    mg_config = MusicGenConfig.from_dict(state["musicgen_config"])
    weights = _inference_weights(state["model"], state.get("ema"))
    embedded: set[str] = set()
    if cfg.get("init_from"):
        # Reuse the pretrained model's own modules: its frozen text encoders may live inside its
        # folder (e.g. the T5 of a Hugging Face checkpoint), which the export must carry along.
        base = MusicGen.get_pretrained(cfg["init_from"], device="cpu")
        lm, conditioners, codec = base.lm, dict(base.conditioners), base.codec
        embedded = set(base.embedded_encoders)
    else:
        lm = LMModel(mg_config.lm)
        conditioners = {attr: build_conditioner(spec) for attr, spec in mg_config.conditioners.items()}
        codec = None
    lm.load_state_dict({k[3:]: v for k, v in weights.items() if k.startswith("lm.")})
    for attr, cond in conditioners.items():
        prefix = f"conditioners.{attr}."
        cond.load_state_dict({k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)})
    if cfg.get("codec"):
        codec = load_codec(cfg["codec"])
    check_codec(lm, codec, run_dir)
    cls = MusicGen
    if mg_config.kind == "audiogen":
        from ..models.audiogen import AudioGen as cls  # type: ignore[no-redef]
    model = cls(cfg.get("name", "musicgen"), mg_config, lm, codec, conditioners)
    model.embedded_encoders = embedded
    return model


def export_run(run_dir: str | Path, out_dir: str | Path, overwrite: bool = False,
               half: bool = False) -> tuple[str, Path]:
    """Write the run's model to `out_dir`; returns (kind, out_dir). Refuses a non-empty `out_dir`
    unless `overwrite`. `half` stores the weights as float16 (they load back as float32)."""
    run_dir = Path(run_dir)
    ckpt = run_dir / CHECKPOINT_NAME
    if not ckpt.is_file():
        raise CheckpointError(f"{run_dir} has no {CHECKPOINT_NAME}: is it a `wavecraft train` run folder?")
    kind = load_checkpoint(ckpt).get("kind")
    out = Path(out_dir)
    if kind == "codec":
        from ..models.loaders.native import save_codec

        save_codec(codec_from_run(run_dir), out, overwrite=overwrite)
    elif kind == "lm":
        musicgen_from_run(run_dir).save_pretrained(out, overwrite=overwrite)
    else:
        raise CheckpointError(f"{ckpt} is of unknown kind {kind!r}")
    if half:
        from ..models.loaders.native import store_half

        store_half(out)
    return str(kind), out


def codec_weights_from(source: str) -> dict[str, torch.Tensor]:
    """Codec weights to start a codec run from: a run folder or anything `load_codec` reads."""
    path = Path(source)
    if (path / CHECKPOINT_NAME).is_file():
        return codec_from_run(path).state_dict()
    from ..codec import load_codec

    return load_codec(source).state_dict()
