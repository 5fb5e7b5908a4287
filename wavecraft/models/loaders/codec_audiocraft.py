"""audiocraft format codecs: `compression_state_dict.bin`, a `torch.save`d dict with `best_state`
(flat state dict) and `xp.cfg` (the training config as YAML), or a pointer
`{'pretrained': 'facebook/encodec_32khz'}` to a released codec, resolved through `wavecraft.hub`.

Loaded with `torch.load(weights_only=True)`: no arbitrary unpickling.

Key translation (audiocraft <-> wavecraft):
    {enc,dec}oder.model.I.conv.conv.X         <-> {enc,dec}oder.layers.I.X   (X: weight_g, weight_v, weight, bias)
    decoder.model.I.convtr.convtr.X           <-> decoder.layers.I.X
    ....conv.norm.Y / ....convtr.norm.Y       <-> ....norm.Y                  (group-norm models)
    ....block.J.conv.conv.X, shortcut.conv.conv.X <-> ....block.J.X, shortcut.X
    ....lstm.*                                 <-> unchanged
    quantizer.vq.layers.I._codebook.Z          <-> quantizer.layers.I.Z
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import torch

from ...codec.config import CodecConfig
from ...codec.model import Codec
from ...codec.seanet import NormConvTranspose1d
from ...errors import CheckpointError
from .native import load_state

_TO_OURS = [
    (re.compile(r"^(encoder|decoder)\.model\."), r"\1.layers."),
    (re.compile(r"\.(conv|convtr)\.\1\.parametrizations\.weight\.original0$"), ".weight_g"),
    (re.compile(r"\.(conv|convtr)\.\1\.parametrizations\.weight\.original1$"), ".weight_v"),
    (re.compile(r"\.(conv|convtr)\.\1\."), "."),
    (re.compile(r"\.(conv|convtr)\.norm\."), ".norm."),
    (re.compile(r"^quantizer\.vq\.layers\.(\d+)\._codebook\."), r"quantizer.layers.\1."),
]
_INTERP = re.compile(r"^\$\{([\w.]+)\}$")


def state_dict_from_audiocraft(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state_dict.items():
        for pattern, repl in _TO_OURS:
            key = pattern.sub(repl, key)
        out[key] = value.float() if value.is_floating_point() else value
    return out


def state_dict_to_audiocraft(codec: Codec) -> dict[str, torch.Tensor]:
    """Our state dict with audiocraft's key names (to export, and to build test fixtures)."""
    out = {}
    for key, value in codec.state_dict().items():
        m = re.match(r"^(encoder|decoder)\.layers\.(\d+)\.(.*)$", key)
        if m:
            part, index, rest = m.groups()
            layer = getattr(codec, part).layers[int(index)]
            wrap = "convtr" if isinstance(layer, NormConvTranspose1d) else "conv"
            if rest.startswith("lstm."):
                pass
            elif rest.startswith("norm."):
                rest = f"{wrap}.{rest}"
            elif re.match(r"^(block\.\d+|shortcut)\.norm\.", rest):
                rest = re.sub(r"^(block\.\d+|shortcut)\.", r"\1.conv.", rest)
            elif re.match(r"^(block\.\d+|shortcut)\.", rest):
                rest = re.sub(r"^(block\.\d+|shortcut)\.", r"\1.conv.conv.", rest)
            else:
                rest = f"{wrap}.{wrap}.{rest}"
            key = f"{part}.model.{index}.{rest}"
        else:
            key = re.sub(r"^quantizer\.layers\.(\d+)\.", r"quantizer.vq.layers.\1._codebook.", key)
        out[key] = value
    return out


def _lookup(root: dict, path: str, default: Any = KeyError) -> Any:
    """cfg['a']['b'] for 'a.b', following OmegaConf `${x.y}` interpolations (xp.cfg is unresolved YAML)."""
    node: Any = root
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            if default is KeyError:
                raise CheckpointError(f"audiocraft config (xp.cfg) lacks {path!r}")
            return default
        node = node[part]
    for _ in range(10):
        m = _INTERP.match(node) if isinstance(node, str) else None
        if not m:
            break
        node = _lookup(root, m.group(1), default)
    return node


def config_from_audiocraft(cfg: Mapping[str, Any]) -> CodecConfig:
    """audiocraft xp.cfg (a dict) -> CodecConfig; refuses features wavecraft does not implement."""
    cfg = dict(cfg)
    if _lookup(cfg, "compression_model", "encodec") != "encodec":
        raise CheckpointError(f"audiocraft compression model {cfg.get('compression_model')!r} is not EnCodec")
    if _lookup(cfg, "encodec.autoencoder", "seanet") != "seanet" or _lookup(cfg, "encodec.quantizer", "rvq") != "rvq":
        raise CheckpointError("only SEANet autoencoders with an RVQ quantizer are supported")
    get = lambda key, default=KeyError: _lookup(cfg, key, default)  # noqa: E731
    if get("seanet.activation", "ELU") != "ELU" or (get("seanet.activation_params", None) or {}).get("alpha", 1.0) != 1.0:
        raise CheckpointError("only ELU(alpha=1) SEANet activations are supported")
    if get("seanet.disable_norm_outer_blocks", 0):
        raise CheckpointError("seanet.disable_norm_outer_blocks > 0 is not supported")
    enc_over = dict(get("seanet.encoder", None) or {})
    dec_over = dict(get("seanet.decoder", None) or {})
    trim = dec_over.pop("trim_right_ratio", 1.0)
    final = dec_over.pop("final_activation", None)
    dec_over.pop("final_activation_params", None)
    if enc_over or dec_over:
        raise CheckpointError(f"encoder/decoder-specific SEANet overrides are not supported: {enc_over or dec_over}")
    if final not in (None, "Tanh"):
        raise CheckpointError(f"final activation {final!r} is not supported")
    norm = get("seanet.norm", "weight_norm")
    return CodecConfig(
        sample_rate=int(get("sample_rate")), channels=int(get("channels")),
        dimension=int(get("seanet.dimension", 128)), n_filters=int(get("seanet.n_filters", 32)),
        ratios=tuple(int(r) for r in get("seanet.ratios", [8, 5, 4, 2])),
        n_residual_layers=int(get("seanet.n_residual_layers", 1)), kernel_size=int(get("seanet.kernel_size", 7)),
        last_kernel_size=int(get("seanet.last_kernel_size", 7)),
        residual_kernel_size=int(get("seanet.residual_kernel_size", 3)),
        dilation_base=int(get("seanet.dilation_base", 2)), compress=int(get("seanet.compress", 2)),
        lstm_layers=int(get("seanet.lstm", 2)), causal=bool(get("seanet.causal", get("encodec.causal", False))),
        pad_mode=str(get("seanet.pad_mode", "constant")), norm=str(norm),
        true_skip=bool(get("seanet.true_skip", True)), trim_right_ratio=float(trim),
        final_activation="tanh" if final == "Tanh" else None,
        bins=int(get("rvq.bins", 1024)), n_q=int(get("rvq.n_q", 8)), renormalize=bool(get("encodec.renormalize", False)),
        decay=float(get("rvq.decay", 0.99)), kmeans_init=bool(get("rvq.kmeans_init", True)),
        kmeans_iters=int(get("rvq.kmeans_iters", 50)),
        threshold_ema_dead_code=float(get("rvq.threshold_ema_dead_code", 2.0)),
        q_dropout=bool(get("rvq.q_dropout", False)),
    )


def load_audiocraft_codec(path: str | Path, name: str | None = None, depth: int = 0) -> Codec:
    """Load `compression_state_dict.bin` (or a folder holding one); `depth` counts the `pretrained`
    pointers already followed."""
    import yaml

    path = Path(path)
    if path.is_dir():
        path = path / "compression_state_dict.bin"
    if not path.is_file():
        raise CheckpointError(f"{path} not found")
    try:
        pkg = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors come in many types
        raise CheckpointError(
            f"cannot safely load {path} (weights_only): {str(err).splitlines()[0] if str(err) else type(err).__name__}"
        ) from None
    if not isinstance(pkg, dict):
        raise CheckpointError(f"{path} is not an audiocraft checkpoint (expected a dict)")
    if "pretrained" in pkg:
        # A MusicGen/AudioGen package that only names its codec: load that one instead.
        from . import load_codec_path

        return load_codec_path(str(pkg["pretrained"]).removeprefix("//pretrained/"), depth + 1)
    if "best_state" not in pkg or "xp.cfg" not in pkg:
        raise CheckpointError(f"{path} is not an audiocraft codec checkpoint (needs 'best_state' and 'xp.cfg')")
    raw_cfg = pkg["xp.cfg"]
    try:
        cfg = yaml.safe_load(raw_cfg) if isinstance(raw_cfg, str) else raw_cfg
    except yaml.YAMLError as err:
        raise CheckpointError(f"{path}: xp.cfg is not valid YAML: {err}") from None
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{path}: xp.cfg is not a mapping")
    state = pkg["best_state"]
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]  # an un-exported training checkpoint
    codec = Codec(config_from_audiocraft(cfg), name=name or path.parent.name)
    load_state(codec, state_dict_from_audiocraft(state), str(path))
    return codec.eval()
