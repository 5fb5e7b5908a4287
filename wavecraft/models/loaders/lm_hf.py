"""Hugging Face MusicGen checkpoints -> our LM (and the pieces the MusicGen class wires around it).

A folder written by `MusicgenForConditionalGeneration.save_pretrained` (or the melody variant)
holds config.json with three sub-configs (text_encoder: T5, audio_encoder: EnCodec, decoder) and
one state dict whose keys start with `text_encoder.`, `audio_encoder.`, `decoder.`,
`enc_to_dec_proj.` and, for melody, `audio_enc_to_dec_proj.`. A bare `MusicgenForCausalLM` folder
(decoder only, keys `model.decoder.*` and `lm_heads.*`) loads with `lm_from_hf` as well.

Decoder key mapping (prefix `model.decoder.`):
    embed_tokens.{k}.weight [card+1, D]          -> emb.weight rows k*(card+1) ...  (stacked)
    layers.{i}.self_attn.{q,k,v}_proj.weight      -> transformer.layers.{i}.self_attn.in_proj.weight (cat)
    layers.{i}.self_attn.out_proj.weight          -> ...self_attn.out_proj.weight
    layers.{i}.self_attn_layer_norm.*             -> ...norm1.*
    layers.{i}.encoder_attn.q_proj.weight         -> ...cross_attn.q_proj.weight
    layers.{i}.encoder_attn.{k,v}_proj.weight     -> ...cross_attn.kv_proj.weight (cat)
    layers.{i}.encoder_attn.out_proj.weight       -> ...cross_attn.out_proj.weight
    layers.{i}.encoder_attn_layer_norm.*          -> ...norm_cross.*
    layers.{i}.fc1 / fc2 / final_layer_norm       -> ...linear1 / linear2 / norm2
    layer_norm.*                                  -> out_norm.*
    lm_heads.{k}.weight [card, D] (no prefix)     -> head.weight (stacked)
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ...errors import CheckpointError
from ...lm.model import LMConfig

Tensor = torch.Tensor


def stereo_delays(n_q: int) -> tuple[int, ...]:
    """Interleaved stereo (L0, R0, L1, R1, ...): both channels of codebook level c get delay c."""
    return tuple(k // 2 for k in range(n_q))


def lm_config_from_hf(decoder: dict[str, Any], cross_attention: bool = True) -> LMConfig:
    """Our LMConfig from a transformers `MusicgenDecoderConfig` dict."""
    act = decoder.get("activation_function", "gelu")
    if act != "gelu":
        raise CheckpointError(f"MusicGen decoder activation {act!r} is not supported (only 'gelu')")
    channels = int(decoder.get("audio_channels", 1))
    n_q = int(decoder.get("num_codebooks", 4))
    if channels == 2 and n_q % 2:
        raise CheckpointError(f"stereo MusicGen needs an even number of codebooks, config has {n_q}")
    return LMConfig(
        n_q=n_q,
        card=int(decoder.get("vocab_size", 2048)),
        dim=int(decoder.get("hidden_size", 1024)),
        num_heads=int(decoder.get("num_attention_heads", 16)),
        num_layers=int(decoder.get("num_hidden_layers", 24)),
        ffn_dim=int(decoder.get("ffn_dim", 4096)),
        cross_attention=cross_attention,
        positional="sin",
        pattern="delay",
        delays=stereo_delays(n_q) if channels == 2 else None,
        cross_masking=True,  # transformers masks padded text in cross-attention ...
        prefix_masking=False,  # ... but attends the whole prefix of MusicGen-melody
    )


def pack_lm_state(
    cfg: LMConfig,
    emb: list[Tensor],
    heads: list[Tensor],
    out_norm: tuple[Tensor, Tensor],
    layers: list[dict[str, Tensor]],
) -> dict[str, Tensor]:
    """Assemble our state dict from per-codebook tables and per-layer tensors named in our scheme
    (keys of each layer dict: norm1.weight, self_attn.in_proj.weight, ... without the prefix)."""
    if len(emb) != cfg.n_q or len(heads) != cfg.n_q:
        raise CheckpointError(f"checkpoint has {len(emb)} embedding tables and {len(heads)} heads, config says {cfg.n_q}")
    for k, table in enumerate(emb):
        if tuple(table.shape) != (cfg.card + 1, cfg.dim):
            raise CheckpointError(f"embedding table {k} is {tuple(table.shape)}, expected {(cfg.card + 1, cfg.dim)}")
    state = {
        "emb.weight": torch.cat(emb, dim=0),
        "head.weight": torch.cat(heads, dim=0),
        "out_norm.weight": out_norm[0],
        "out_norm.bias": out_norm[1],
    }
    if len(layers) != cfg.num_layers:
        raise CheckpointError(f"checkpoint has {len(layers)} layers, config says {cfg.num_layers}")
    for i, layer in enumerate(layers):
        for name, value in layer.items():
            state[f"transformer.layers.{i}.{name}"] = value
    return state


def _take(sd: dict[str, Tensor], key: str, where: str) -> Tensor:
    try:
        return sd.pop(key)
    except KeyError:
        raise CheckpointError(f"{where}: missing weight {key!r}") from None


def lm_from_hf(config: dict[str, Any], state_dict: dict[str, Tensor], where: str = "checkpoint") -> tuple[LMConfig, dict[str, Tensor]]:
    """Convert a transformers MusicGen decoder to (LMConfig, our state dict).

    `config` is the decoder config dict; `state_dict` holds the decoder's tensors with or without
    the `decoder.` prefix (as in a full MusicgenForConditionalGeneration or a bare ForCausalLM).
    Extra keys (text encoder, codec) are ignored; missing ones raise CheckpointError.
    """
    prefix = "decoder." if any(k.startswith("decoder.model.decoder.") for k in state_dict) else ""
    sd = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix + "model.decoder.") or k.startswith(prefix + "lm_heads.")}
    base = "model.decoder."
    cross = any(".encoder_attn." in k for k in sd)
    cfg = lm_config_from_hf(config, cross_attention=cross)
    emb = [_take(sd, f"{base}embed_tokens.{k}.weight", where) for k in range(cfg.n_q)]
    heads = [_take(sd, f"lm_heads.{k}.weight", where) for k in range(cfg.n_q)]
    out_norm = (_take(sd, f"{base}layer_norm.weight", where), _take(sd, f"{base}layer_norm.bias", where))
    layers = []
    for i in range(cfg.num_layers):
        p = f"{base}layers.{i}."
        t = lambda name: _take(sd, p + name, where)  # noqa: E731
        layer = {
            "norm1.weight": t("self_attn_layer_norm.weight"),
            "norm1.bias": t("self_attn_layer_norm.bias"),
            "self_attn.in_proj.weight": torch.cat(
                [t("self_attn.q_proj.weight"), t("self_attn.k_proj.weight"), t("self_attn.v_proj.weight")]
            ),
            "self_attn.out_proj.weight": t("self_attn.out_proj.weight"),
            "norm2.weight": t("final_layer_norm.weight"),
            "norm2.bias": t("final_layer_norm.bias"),
            "linear1.weight": t("fc1.weight"),
            "linear2.weight": t("fc2.weight"),
        }
        if cross:
            layer.update({
                "norm_cross.weight": t("encoder_attn_layer_norm.weight"),
                "norm_cross.bias": t("encoder_attn_layer_norm.bias"),
                "cross_attn.q_proj.weight": t("encoder_attn.q_proj.weight"),
                "cross_attn.kv_proj.weight": torch.cat([t("encoder_attn.k_proj.weight"), t("encoder_attn.v_proj.weight")]),
                "cross_attn.out_proj.weight": t("encoder_attn.out_proj.weight"),
            })
        layers.append(layer)
    leftover = sorted(k for k in sd if not k.endswith("embed_positions.weights"))
    if leftover:
        raise CheckpointError(f"{where}: unexpected decoder weights {leftover[:5]}{' ...' if len(leftover) > 5 else ''}")
    return cfg, pack_lm_state(cfg, emb, heads, out_norm, layers)


def read_hf_folder(folder: str | Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """config.json and the weights (model.safetensors, sharded safetensors or pytorch_model.bin)."""
    folder = Path(folder)
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise CheckpointError(f"{folder}: no config.json (a Hugging Face MusicGen folder holds config.json and model.safetensors)")
    try:
        config = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{cfg_path}: invalid JSON ({err})") from None
    return config, read_hf_weights(folder)


def read_hf_weights(folder: Path) -> dict[str, Tensor]:
    single = folder / "model.safetensors"
    if single.is_file():
        return _load_safetensors(single)
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        state: dict[str, Tensor] = {}
        for shard in shards:
            if not (folder / shard).is_file():
                raise CheckpointError(f"{folder}: shard {shard} listed in {index.name} is missing")
            state.update(_load_safetensors(folder / shard))
        return state
    bin_path = folder / "pytorch_model.bin"
    if bin_path.is_file():
        try:
            return torch.load(bin_path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - any unpickling failure is a bad file for the user
            raise CheckpointError(f"{bin_path}: cannot read weights ({err})") from None
    raise CheckpointError(
        f"{folder}: no weights found (expected model.safetensors, model.safetensors.index.json or pytorch_model.bin)"
    )


def _load_safetensors(path: Path) -> dict[str, Tensor]:
    from .native import read_safetensors

    try:
        return read_safetensors(path)
    except OSError as err:
        raise CheckpointError(f"{path}: cannot read safetensors ({err})") from None


def sub_state(state_dict: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """The tensors under `prefix.` with the prefix removed."""
    n = len(prefix) + 1
    return {k[n:]: v for k, v in state_dict.items() if k.startswith(prefix + ".")}


# -- whole models ---------------------------------------------------------------------------------
def _text_conditioner(folder: Path, config: dict[str, Any], state: dict[str, Tensor], lm_dim: int) -> Any:
    """The T5 conditioner of an HF MusicGen: `text_encoder.*` weights, the folder's tokenizer and
    `enc_to_dec_proj` (absent when the T5 width equals the decoder width)."""
    from transformers import T5Config, T5EncoderModel

    from ...conditioners import T5Conditioner

    text_cfg = dict(config.get("text_encoder") or {})
    if text_cfg.get("model_type", "t5") != "t5":
        raise CheckpointError(f"{folder}: text encoder {text_cfg.get('model_type')!r} is not supported (only T5)")
    encoder = T5EncoderModel(T5Config.from_dict(text_cfg)).eval()
    weights = sub_state(state, "text_encoder")
    if not weights:
        raise CheckpointError(f"{folder}: the checkpoint has no text_encoder.* weights (the T5 encoder)")
    missing, unexpected = encoder.load_state_dict(weights, strict=False)
    tied = {"shared.weight", "encoder.embed_tokens.weight"}  # one tensor under two names: either will do
    if tied & set(weights):
        missing = [k for k in missing if k not in tied]
    if missing or unexpected:
        raise CheckpointError(f"{folder}: T5 weights do not match its config (missing {missing[:3]}, unexpected {unexpected[:3]})")
    proj = None
    proj_state = sub_state(state, "enc_to_dec_proj")
    if proj_state:
        proj = torch.nn.Linear(proj_state["weight"].shape[1], proj_state["weight"].shape[0])
        proj.load_state_dict(proj_state)
    elif int(text_cfg.get("d_model", 0)) != lm_dim:
        raise CheckpointError(f"{folder}: enc_to_dec_proj.* is missing (T5 width differs from the decoder width)")
    return T5Conditioner.from_modules(encoder, _tokenizer(folder), proj, output_dim=lm_dim)


def _tokenizer(folder: Path) -> Any:
    from transformers import AutoTokenizer

    files = ("tokenizer.json", "spiece.model")
    if not any((folder / f).is_file() for f in files):
        raise CheckpointError(
            f"{folder}: the T5 tokenizer is missing (tokenizer.json or spiece.model, with tokenizer_config.json); "
            "copy those files from the model's Hugging Face repo (e.g. facebook/musicgen-small) into this folder"
        )
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # it parses the MusicGen config.json and warns about the pad id = vocab size
    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, ImportError) as err:
        if (folder / "spiece.model").is_file():
            from ...conditioners.t5 import spm_tokenizer  # sentencepiece-only fallback

            return spm_tokenizer(folder)
        raise CheckpointError(f"{folder}: cannot load the tokenizer ({err})") from None
    finally:
        hf_logging.set_verbosity(level)


def _chroma_conditioner(folder: Path, config: dict[str, Any], state: dict[str, Tensor], lm_dim: int, sample_rate: int) -> Any:
    from ...conditioners import ChromaConditioner, ChromaConditionerConfig, ChromaConfig

    extractor: dict[str, Any] = {}
    pre = folder / "preprocessor_config.json"
    if pre.is_file():
        extractor = json.loads(pre.read_text())
    n_chroma = int(config.get("num_chroma", 12))
    chroma = ChromaConfig(
        sample_rate=int(extractor.get("sampling_rate", sample_rate)), n_fft=int(extractor.get("n_fft", 16384)),
        hop_length=int(extractor.get("hop_length", 4096)), n_chroma=n_chroma,
    )
    proj_state = sub_state(state, "audio_enc_to_dec_proj")
    cfg = ChromaConditionerConfig(output_dim=lm_dim, chroma=chroma, length=int(config.get("chroma_length", 235)),
                                  project=bool(proj_state))
    cond = ChromaConditioner(cfg)
    if proj_state:
        cond.output_proj.load_state_dict(proj_state)
    elif n_chroma != lm_dim:
        raise CheckpointError(f"{folder}: audio_enc_to_dec_proj.* is missing (chroma width differs from the decoder width)")
    return cond


def load_hf_model(folder: str | Path, name: str | None = None) -> Any:
    """A `MusicGen` from a transformers MusicGen or MusicGen-melody folder."""
    from ..musicgen import MusicGen, MusicGenConfig
    from .codec_hf import codec_from_hf
    from ..components import InterleavedStereoCodec
    from .musicgen_native import check_codec

    folder = Path(folder)
    config, state = read_hf_folder(folder)
    model_type = config.get("model_type")
    if model_type not in ("musicgen", "musicgen_melody"):
        raise CheckpointError(f"{folder}/config.json describes a {model_type!r} model, not MusicGen")
    decoder = config.get("decoder") or {}
    lm_cfg, lm_state = lm_from_hf(decoder, state, where=str(folder))
    for key in [k for k in state if k.startswith("decoder.")]:
        del state[key]  # the converted copies are what the LM keeps; free the originals now
    from .native import build_lm

    lm = build_lm(lm_cfg, lm_state, str(folder))
    del lm_state
    codec = codec_from_hf(config.get("audio_encoder") or {}, sub_state(state, "audio_encoder"), name=f"{folder.name}-codec")
    if int(decoder.get("audio_channels", 1)) == 2:
        codec = InterleavedStereoCodec(codec)
    check_codec(lm, codec, folder)
    conditioners = {"description": _text_conditioner(folder, config, state, lm_cfg.dim)}
    if model_type == "musicgen_melody":
        conditioners["self_wav"] = _chroma_conditioner(folder, config, state, lm_cfg.dim, codec.sample_rate)
        fuse = {"self_wav": "prepend", "description": "prepend"}
    else:
        fuse = {"description": "cross"}
    from ..components import conditioner_spec

    mg_cfg = MusicGenConfig(kind="musicgen", lm=lm_cfg, conditioners={a: conditioner_spec(c) for a, c in conditioners.items()},
                            fuse=fuse, stereo=isinstance(codec, InterleavedStereoCodec))
    model = MusicGen(name or folder.name, mg_cfg, lm, codec, conditioners)
    model.embedded_encoders.add("description")
    return model
