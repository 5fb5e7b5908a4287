"""Hugging Face format codecs: the folder `transformers.EncodecModel.save_pretrained` writes
(`config.json` + `model.safetensors`, sharded safetensors, or `pytorch_model.bin`), and the
`audio_encoder` part of a Hugging Face MusicGen folder.

Key translation (transformers -> wavecraft):
    {enc,dec}oder.layers.I.conv.parametrizations.weight.original0 -> {enc,dec}oder.layers.I.weight_g
    ...original1 / ...conv.weight_g / ...conv.weight_v             -> weight_v / weight_g / weight_v
    ...conv.weight, ...conv.bias                                   -> weight, bias (group-norm models)
    ...norm.{weight,bias}, ...lstm.*                               -> unchanged
    quantizer.layers.I.codebook.X                                  -> quantizer.layers.I.X
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Mapping

import torch

from ...codec.config import CodecConfig
from ...codec.model import Codec
from ...errors import CheckpointError
from .native import load_state

# transformers' EncodecConfig defaults, for config.json files written by older versions that omit keys.
_HF_DEFAULTS: dict[str, Any] = dict(
    target_bandwidths=[1.5, 3.0, 6.0, 12.0, 24.0], sampling_rate=24000, audio_channels=1, normalize=False,
    chunk_length_s=None, overlap=None, hidden_size=128, num_filters=32, num_residual_layers=1,
    upsampling_ratios=[8, 5, 4, 2], norm_type="weight_norm", kernel_size=7, last_kernel_size=7,
    residual_kernel_size=3, dilation_growth_rate=2, use_causal_conv=True, pad_mode="reflect", compress=2,
    num_lstm_layers=2, trim_right_ratio=1.0, codebook_size=1024, codebook_dim=None, use_conv_shortcut=True,
)

_RENAMES = [
    (re.compile(r"\.conv\.parametrizations\.weight\.original0$"), ".weight_g"),
    (re.compile(r"\.conv\.parametrizations\.weight\.original1$"), ".weight_v"),
    (re.compile(r"\.conv\.(weight_g|weight_v|weight|bias)$"), r".\1"),
    (re.compile(r"^quantizer\.layers\.(\d+)\.codebook\."), r"quantizer.layers.\1."),
]


def config_from_hf(config: Mapping[str, Any]) -> CodecConfig:
    """transformers EncodecConfig dict -> CodecConfig."""
    c = {**_HF_DEFAULTS, **config}
    if c["chunk_length_s"] is None or c["overlap"] is None:  # transformers chunks only when both are set
        c["chunk_length_s"] = c["overlap"] = None
    if c["codebook_dim"] not in (None, c["hidden_size"]):
        raise CheckpointError(f"codec config has codebook_dim {c['codebook_dim']} != hidden_size {c['hidden_size']}; not supported")
    ratios = [int(r) for r in c["upsampling_ratios"]]
    hop = math.prod(ratios)
    # transformers derives the number of codebooks from the highest target bandwidth.
    frame_rate = math.ceil(c["sampling_rate"] / hop)
    bits = math.ceil(math.log2(c["codebook_size"]))
    n_q = int(1000 * max(c["target_bandwidths"]) // (frame_rate * bits))
    return CodecConfig(
        sample_rate=int(c["sampling_rate"]), channels=int(c["audio_channels"]), dimension=int(c["hidden_size"]),
        n_filters=int(c["num_filters"]), ratios=tuple(ratios), n_residual_layers=int(c["num_residual_layers"]),
        kernel_size=int(c["kernel_size"]), last_kernel_size=int(c["last_kernel_size"]),
        residual_kernel_size=int(c["residual_kernel_size"]), dilation_base=int(c["dilation_growth_rate"]),
        compress=int(c["compress"]), lstm_layers=int(c["num_lstm_layers"]), causal=bool(c["use_causal_conv"]),
        pad_mode=str(c["pad_mode"]), norm=str(c["norm_type"]), true_skip=not c["use_conv_shortcut"],
        trim_right_ratio=float(c["trim_right_ratio"]), bins=int(c["codebook_size"]), n_q=n_q,
        target_bandwidths=tuple(float(b) for b in c["target_bandwidths"]), renormalize=bool(c["normalize"]),
        chunk_length_s=c["chunk_length_s"], overlap=c["overlap"],
    )


def state_dict_from_hf(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state_dict.items():
        for pattern, repl in _RENAMES:
            key = pattern.sub(repl, key)
        out[key] = value.float() if value.is_floating_point() else value
    return out


def codec_from_hf(config: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor], name: str = "codec") -> Codec:
    """Build a Codec from a transformers EnCodec config dict and its state dict (transformers key
    names, without any prefix: strip `audio_encoder.` from MusicGen checkpoints first)."""
    codec = Codec(config_from_hf(config), name=name)
    load_state(codec, state_dict_from_hf(state_dict), name)
    return codec.eval()


def _read_weights(folder: Path, prefix: str = "") -> dict[str, torch.Tensor]:
    """Tensors whose key starts with `prefix` (prefix removed), reading only what is needed."""
    from .native import read_safetensors

    def from_safetensors(files: list[Path]) -> dict[str, torch.Tensor]:
        out = {}
        for file in files:
            try:
                out.update(read_safetensors(file, prefix))
            except OSError as err:
                raise CheckpointError(f"cannot read {file}: {err}") from None
        return out

    if (folder / "model.safetensors").is_file():
        return from_safetensors([folder / "model.safetensors"])
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text()).get("weight_map", {})
        files = sorted({f for k, f in weight_map.items() if k.startswith(prefix)})
        missing = [f for f in files if not (folder / f).is_file()]
        if missing:
            raise CheckpointError(f"{folder} is incomplete: shard(s) {missing} listed in {index.name} are missing")
        return from_safetensors([folder / f for f in files])
    if (folder / "pytorch_model.bin").is_file():
        try:
            sd = torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
        except Exception as err:  # pickle errors come in many types
            raise CheckpointError(f"cannot safely load {folder / 'pytorch_model.bin'}: {err}") from None
        return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    raise CheckpointError(f"{folder} has a config.json but no model.safetensors or pytorch_model.bin")


def load_hf_codec(folder: str | Path, name: str | None = None) -> Codec:
    """Load an EnCodec (or the codec inside a MusicGen) from a Hugging Face format folder."""
    folder = Path(folder)
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"cannot read {folder / 'config.json'}: {err}") from None
    model_type = config.get("model_type", "")
    prefix = ""
    if model_type.startswith("musicgen"):
        config, prefix = config.get("audio_encoder") or {}, "audio_encoder."
        if config.get("model_type", "encodec") != "encodec":
            raise CheckpointError(f"{folder}: the MusicGen audio encoder is {config.get('model_type')!r}, not EnCodec")
    elif model_type != "encodec":
        raise CheckpointError(f"{folder / 'config.json'} describes a {model_type or 'unknown'!r} model, not an EnCodec codec")
    state_dict = _read_weights(folder, prefix)
    if not state_dict:
        raise CheckpointError(f"{folder}: no codec weights found (expected keys starting with {prefix or 'encoder.'!r})")
    return codec_from_hf(config, state_dict, name or folder.name)
