"""audiocraft checkpoints (`state_dict.bin` + `compression_state_dict.bin`) -> MusicGen / AudioGen.

`state_dict.bin` is a torch.save'd dict: `best_state` (the LM's flat state dict, conditioner
projections included) and `xp.cfg` (the training config as a YAML string). The T5 weights are
not inside: `conditioners.description.t5.name` (t5-base / t5-large) is loaded from a folder or
the Hugging Face cache. The codec comes from `compression_state_dict.bin` next to it.

Key mapping (audiocraft -> ours):
    emb.{k}.weight                                   -> lm.emb.weight (stacked, row k*(card+1)+id)
    linears.{k}.weight                               -> lm.head.weight (stacked)
    out_norm.*                                       -> lm.out_norm.*
    transformer.layers.{i}.self_attn.in_proj_*       -> ...self_attn.in_proj.* (already fused q,k,v)
    transformer.layers.{i}.cross_attention.in_proj_* -> ...cross_attn.q_proj (rows :D), kv_proj (rows D:)
    transformer.layers.{i}.{norm1,norm_cross,norm2,linear1,linear2}.* -> same names
    condition_provider.conditioners.<attr>.output_proj.* -> the conditioner's output_proj
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from ...errors import CheckpointError
from ...lm.model import LMConfig, LMModel
from .lm_hf import pack_lm_state

Tensor = torch.Tensor
_COND = "condition_provider.conditioners."


def _get(cfg: dict[str, Any], path: str, default: Any = KeyError) -> Any:
    """cfg['a']['b'] for 'a.b', following `${x.y}` interpolations (xp.cfg is unresolved YAML)."""
    node: Any = cfg
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            if default is KeyError:
                raise CheckpointError(f"audiocraft xp.cfg lacks {path!r}")
            return default
        node = node[part]
    if isinstance(node, str):
        m = re.fullmatch(r"\$\{([\w.]+)\}", node.strip())
        if m:
            return _get(cfg, m.group(1), default)
    return node


def lm_config_from_audiocraft(cfg: dict[str, Any]) -> LMConfig:
    t = "transformer_lm."
    unsupported = {
        "layer_scale": None, "qk_layer_norm": False, "qk_layer_norm_cross": False, "kv_repeat": 1,
        "xpos": False, "bias_proj": False, "norm": "layer_norm", "norm_first": True,
    }
    for key, ok in unsupported.items():
        value = _get(cfg, t + key, ok)
        if value != ok:
            raise CheckpointError(f"audiocraft LM option transformer_lm.{key}={value!r} is not supported (needs {ok!r})")
    if _get(cfg, t + "activation", "gelu") != "gelu":
        raise CheckpointError(f"audiocraft LM activation {_get(cfg, t + 'activation')!r} is not supported (only gelu)")
    if float(_get(cfg, t + "positional_scale", 1.0)) != 1.0:
        raise CheckpointError("audiocraft LM option transformer_lm.positional_scale != 1 is not supported")
    modeling = _get(cfg, "codebooks_pattern.modeling", "delay")
    n_q = int(_get(cfg, t + "n_q"))
    delays = None
    if modeling == "delay":
        if int(_get(cfg, "codebooks_pattern.delay.flatten_first", 0)) or int(_get(cfg, "codebooks_pattern.delay.empty_initial", 0)):
            raise CheckpointError("delay patterns with flatten_first / empty_initial are not supported")
        raw = _get(cfg, "codebooks_pattern.delay.delays", None)
        delays = tuple(int(d) for d in raw) if raw is not None else None
    elif modeling == "coarse_first":
        raw = _get(cfg, "codebooks_pattern.coarse_first.delays", None)
        delays = tuple(int(d) for d in raw) if raw is not None else None
    elif modeling == "unroll":
        if _get(cfg, "codebooks_pattern.unroll.flattening", None) not in (None, list(range(n_q))) or any(
            int(d) for d in (_get(cfg, "codebooks_pattern.unroll.delays", None) or [])
        ):
            raise CheckpointError("unroll patterns with custom flattening or delays are not supported")
    elif modeling != "parallel":
        raise CheckpointError(f"audiocraft codebook pattern {modeling!r} is not supported")
    dim = int(_get(cfg, t + "dim"))
    positional = _get(cfg, t + "positional_embedding", "sin")
    return LMConfig(
        n_q=n_q, card=int(_get(cfg, t + "card")), dim=dim, num_heads=int(_get(cfg, t + "num_heads")),
        num_layers=int(_get(cfg, t + "num_layers")), ffn_dim=int(dim * float(_get(cfg, t + "hidden_scale", 4))),
        cross_attention=bool(_get(cfg, t + "cross_attention", False)), bias_attn=bool(_get(cfg, t + "bias_attn", False)),
        bias_ff=bool(_get(cfg, t + "bias_ff", False)), positional=positional,
        max_period=float(_get(cfg, t + "max_period", 10000)), pattern=modeling, delays=delays,
        cross_masking=False, prefix_masking=False,  # audiocraft attends padded positions (zero vectors)
    )


def lm_state_from_audiocraft(cfg: LMConfig, best_state: dict[str, Tensor], where: str) -> dict[str, Tensor]:
    sd = dict(best_state)

    def take(key: str) -> Tensor:
        if key not in sd:
            raise CheckpointError(f"{where}: missing weight {key!r}")
        return sd.pop(key)

    D = cfg.dim
    emb = [take(f"emb.{k}.weight") for k in range(cfg.n_q)]
    heads = [take(f"linears.{k}.weight") for k in range(cfg.n_q)]
    out_norm = (take("out_norm.weight"), take("out_norm.bias"))
    layers = []
    for i in range(cfg.num_layers):
        p = f"transformer.layers.{i}."
        layer = {"self_attn.in_proj.weight": take(p + "self_attn.in_proj_weight"),
                 "self_attn.out_proj.weight": take(p + "self_attn.out_proj.weight")}
        for n in ("norm1", "norm2"):
            layer[f"{n}.weight"], layer[f"{n}.bias"] = take(f"{p}{n}.weight"), take(f"{p}{n}.bias")
        for n in ("linear1", "linear2"):
            layer[f"{n}.weight"] = take(f"{p}{n}.weight")
            if cfg.bias_ff:
                layer[f"{n}.bias"] = take(f"{p}{n}.bias")
        if cfg.bias_attn:
            layer["self_attn.in_proj.bias"] = take(p + "self_attn.in_proj_bias")
            layer["self_attn.out_proj.bias"] = take(p + "self_attn.out_proj.bias")
        if cfg.cross_attention:
            w = take(p + "cross_attention.in_proj_weight")
            layer.update({"cross_attn.q_proj.weight": w[:D], "cross_attn.kv_proj.weight": w[D:],
                          "cross_attn.out_proj.weight": take(p + "cross_attention.out_proj.weight"),
                          "norm_cross.weight": take(p + "norm_cross.weight"), "norm_cross.bias": take(p + "norm_cross.bias")})
            if cfg.bias_attn:
                b = take(p + "cross_attention.in_proj_bias")
                layer.update({"cross_attn.q_proj.bias": b[:D], "cross_attn.kv_proj.bias": b[D:],
                              "cross_attn.out_proj.bias": take(p + "cross_attention.out_proj.bias")})
        layers.append(layer)
    leftover = sorted(k for k in sd if not k.startswith(_COND))
    if leftover:
        raise CheckpointError(f"{where}: unexpected LM weights {leftover[:5]}")
    return pack_lm_state(cfg, emb, heads, out_norm, layers)


def lm_state_to_audiocraft(lm: LMModel) -> dict[str, Tensor]:
    """Our LM weights under audiocraft's key names (the inverse of `lm_state_from_audiocraft`)."""
    cfg, sd, D = lm.cfg, lm.state_dict(), lm.cfg.dim
    out: dict[str, Tensor] = {}
    for k in range(cfg.n_q):
        out[f"emb.{k}.weight"] = sd["emb.weight"][k * (cfg.card + 1):(k + 1) * (cfg.card + 1)].clone()
        out[f"linears.{k}.weight"] = sd["head.weight"][k * cfg.card:(k + 1) * cfg.card].clone()
    out["out_norm.weight"], out["out_norm.bias"] = sd["out_norm.weight"], sd["out_norm.bias"]
    for key, value in sd.items():
        if not key.startswith("transformer.layers."):
            continue
        name = key.replace("self_attn.in_proj.weight", "self_attn.in_proj_weight").replace(
            "self_attn.in_proj.bias", "self_attn.in_proj_bias")
        if ".cross_attn.q_proj." in key or ".cross_attn.kv_proj." in key:
            continue
        out[name.replace(".cross_attn.", ".cross_attention.")] = value
    for i in range(cfg.num_layers if cfg.cross_attention else 0):
        p = f"transformer.layers.{i}.cross_attn."
        out[f"transformer.layers.{i}.cross_attention.in_proj_weight"] = torch.cat([sd[p + "q_proj.weight"], sd[p + "kv_proj.weight"]])
        if cfg.bias_attn:
            out[f"transformer.layers.{i}.cross_attention.in_proj_bias"] = torch.cat([sd[p + "q_proj.bias"], sd[p + "kv_proj.bias"]])
    assert D == cfg.dim
    return out


def _read_package(path: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    import yaml

    try:
        pkg = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - unpickling errors come in many types
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"cannot safely load {path} (weights_only): {first}") from None
    if not isinstance(pkg, dict) or "best_state" not in pkg or "xp.cfg" not in pkg:
        raise CheckpointError(f"{path} is not an audiocraft LM checkpoint (expected a dict with 'best_state' and 'xp.cfg')")
    raw = pkg["xp.cfg"]
    try:
        cfg = yaml.safe_load(raw) if isinstance(raw, str) else raw
    except yaml.YAMLError as err:
        raise CheckpointError(f"{path}: xp.cfg is not valid YAML ({err})") from None
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{path}: xp.cfg is not a mapping")
    state = pkg["best_state"]
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    return state, cfg


def _conditioners(cfg: dict[str, Any], state: dict[str, Tensor], dim: int, sample_rate: int, where: str) -> dict[str, Any]:
    from ...conditioners import (ChromaConditioner, ChromaConditionerConfig, ChromaConfig, T5Conditioner,
                                 T5ConditionerConfig)
    from .native import load_state

    conds = {}
    for attr, spec in (_get(cfg, "conditioners", {}) or {}).items():
        if not isinstance(spec, dict) or "model" not in spec:
            continue
        model = spec["model"]
        if model == "t5":
            t5 = spec.get("t5") or {}
            cond = T5Conditioner(T5ConditionerConfig(name=str(t5.get("name", "t5-base")), output_dim=dim))
        elif model in ("chroma_stem", "chroma"):
            c = spec.get(model) or {}
            n_fft = 2 ** int(c.get("radix2_exp", 14))
            chroma = ChromaConfig(sample_rate=int(c.get("sample_rate", sample_rate)), n_fft=n_fft,
                                  n_chroma=int(c.get("n_chroma", 12)), argmax=bool(c.get("argmax", True)))
            duration = float(_get(cfg, "dataset.segment_duration", 30))
            frames = int(duration * chroma.sample_rate / (n_fft // 4)) + 1
            cond = ChromaConditioner(ChromaConditionerConfig(output_dim=dim, chroma=chroma, length=frames))
        else:
            raise CheckpointError(f"{where}: audiocraft conditioner {attr!r} of type {model!r} is not supported")
        prefix = f"{_COND}{attr}."
        own = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix + "output_proj.")}
        load_state(cond, own, f"{where} (conditioner {attr!r})")
        conds[attr] = cond
    return conds


def load_audiocraft_model(path: str | Path, name: str | None = None) -> Any:
    """`state_dict.bin` (+ `compression_state_dict.bin` in the same folder) -> MusicGen or AudioGen."""
    from ...conditioners import fuse_map_from_audiocraft
    from ..audiogen import AudioGen
    from ..components import InterleavedStereoCodec, conditioner_spec
    from ..musicgen import MusicGen, MusicGenConfig
    from . import load_codec
    from .musicgen_native import check_codec
    from .native import build_lm

    path = Path(path)
    state, cfg = _read_package(path)
    codec_path = path.parent / "compression_state_dict.bin"
    if not codec_path.is_file():
        raise CheckpointError(f"{path.parent}: compression_state_dict.bin (the codec) is missing next to {path.name}")
    codec = load_codec(codec_path)
    lm_cfg = lm_config_from_audiocraft(cfg)
    lm = build_lm(lm_cfg, lm_state_from_audiocraft(lm_cfg, state, str(path)), str(path))
    stereo = bool(_get(cfg, "interleave_stereo_codebooks.use", False)) or (int(_get(cfg, "channels", 1)) == 2 and codec.channels == 1)
    if stereo:
        codec = InterleavedStereoCodec(codec)
    check_codec(lm, codec, path)
    conditioners = _conditioners(cfg, state, lm_cfg.dim, codec.sample_rate, str(path))
    order = [a for a in conditioners if conditioner_spec(conditioners[a])["type"] != "chroma"]
    order += [a for a in conditioners if a not in order]
    fuse = fuse_map_from_audiocraft(_get(cfg, "fuser", {}) or {}, order)
    fuse = {a: m for a, m in fuse.items() if a in conditioners}
    audiogen = str(_get(cfg, "solver", "musicgen")) == "audiogen"
    duration = float(_get(cfg, "dataset.segment_duration", 10 if audiogen else 30))
    mg_cfg = MusicGenConfig(
        kind="audiogen" if audiogen else "musicgen", lm=lm_cfg,
        conditioners={a: conditioner_spec(c) for a, c in conditioners.items()}, fuse=fuse, stereo=stereo,
        max_duration=duration, extend_stride=2.0 if audiogen else 18.0, default_duration=5.0 if audiogen else 15.0,
    )
    cls = AudioGen if audiogen else MusicGen
    model = cls(name or path.parent.name, mg_cfg, lm, codec, conditioners)
    model.generation_params = model.generation_params.replace(
        two_step_cfg=bool(_get(cfg, "transformer_lm.two_step_cfg", False)),
        cfg_coef=float(_get(cfg, "classifier_free_guidance.inference_coef", 3.0)),
    )
    return model
