"""wavecraft's own checkpoint format: a folder with `config.json` and `model.safetensors`.

config.json = {"format": "wavecraft", "kind": <"codec" | "musicgen" | ...>, "version": 1,
               "config": <the component's Config.to_dict()>, "extra": <free JSON>}
model.safetensors holds the state dict with our own key names. No pickle anywhere, so loading is
safe. The format is generic: the LM code saves whole models with the same two functions.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

import torch

from ...config import Config
from ...errors import CheckpointError

if TYPE_CHECKING:
    from ...codec.model import Codec

FORMAT = "wavecraft"
VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


def is_native(folder: str | Path) -> bool:
    """True when `folder` holds a wavecraft-format config.json."""
    cfg = Path(folder) / CONFIG_FILE
    if not cfg.is_file():
        return False
    try:
        return json.loads(cfg.read_text()).get("format") == FORMAT
    except (json.JSONDecodeError, OSError, AttributeError):
        return False


def save_native(folder: str | Path, kind: str, config: Config | Mapping[str, Any], state_dict: Mapping[str, torch.Tensor],
                extra: Mapping[str, Any] | None = None, overwrite: bool = False) -> Path:
    """Write a wavecraft checkpoint folder. Refuses a non-empty existing folder unless `overwrite`."""
    from safetensors.torch import save_file

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise CheckpointError(f"cannot save a checkpoint to {folder}: it is a file")
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise CheckpointError(f"checkpoint folder {folder} exists and is not empty; choose another folder or pass overwrite=True")
    cfg = config.to_dict() if isinstance(config, Config) else dict(config)
    meta = {"format": FORMAT, "kind": kind, "version": VERSION, "config": cfg, "extra": dict(extra or {})}
    try:
        text = json.dumps(meta, indent=2)
    except TypeError as err:
        raise CheckpointError(f"checkpoint config/extra for {folder} must be plain JSON data: {err}") from None
    # safetensors refuses tensors sharing storage (tied weights); save independent contiguous copies.
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / WEIGHTS_FILE), metadata={"format": "pt", "wavecraft_kind": kind})
    (folder / CONFIG_FILE).write_text(text + "\n")
    return folder


_SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}


def read_safetensors(path: str | Path, prefix: str = "") -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file whose key starts with `prefix` (prefix removed).

    Each tensor is read with plain file reads straight into memory of its own. safetensors' own
    loader hands out views of a memory-mapped file instead: a model holding those keeps the whole
    file mapped (its pages count as the process's memory on top of any converted copies), and
    rewriting the file in place (re-saving a checkpoint) would change, or crash, the live model.
    Raises CheckpointError for a malformed file."""
    path = Path(path)
    out: dict[str, torch.Tensor] = {}
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path}: not a safetensors file (shorter than its header)")
        size = int.from_bytes(head, "little")
        if size > path.stat().st_size - 8:
            raise CheckpointError(f"{path}: not a safetensors file (its header length {size} exceeds the file)")
        try:
            header = json.loads(fh.read(size))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise CheckpointError(f"{path}: not a safetensors file (bad header: {err})") from None
        if not isinstance(header, dict):
            raise CheckpointError(f"{path}: not a safetensors file (its header is not a JSON object)")
        base = 8 + size
        for key, info in header.items():
            if key == "__metadata__" or not key.startswith(prefix):
                continue
            try:
                dtype = _SAFETENSORS_DTYPES[info["dtype"]]
                begin, finish = (int(x) for x in info["data_offsets"])
                shape = [int(d) for d in info["shape"]]
                if begin < 0 or min(shape, default=0) < 0:
                    raise ValueError("negative offset or dimension")
            except (KeyError, TypeError, ValueError):
                raise CheckpointError(f"{path}: tensor {key!r} has an unsupported or malformed entry {info}") from None
            tensor = torch.empty(shape, dtype=dtype)
            nbytes = tensor.numel() * tensor.element_size()
            if finish - begin != nbytes:
                raise CheckpointError(f"{path}: tensor {key!r} spans {finish - begin} bytes, its shape needs {nbytes}")
            fh.seek(base + begin)
            if nbytes and fh.readinto(memoryview(tensor.view(-1).view(torch.uint8).numpy())) != nbytes:
                raise CheckpointError(f"{path}: truncated file (tensor {key!r})")
            out[key[len(prefix):]] = tensor
    return out


def load_native(folder: str | Path) -> tuple[str, dict[str, Any], dict[str, torch.Tensor], dict[str, Any]]:
    """Read a wavecraft checkpoint folder -> (kind, config dict, state dict, extra)."""
    folder = Path(folder)
    cfg_path, weights = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    if not cfg_path.is_file():
        raise CheckpointError(f"{folder} is not a wavecraft checkpoint: {CONFIG_FILE} is missing")
    try:
        meta = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{cfg_path} is not valid JSON: {err}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{cfg_path} is not a wavecraft checkpoint config (no \"format\": \"wavecraft\")")
    version = meta.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise CheckpointError(
            f"{cfg_path} has format version {version!r}; this wavecraft reads version {VERSION} or older: upgrade wavecraft"
        )
    if not isinstance(meta.get("config"), dict) or not isinstance(meta.get("kind"), str):
        raise CheckpointError(f"{cfg_path} lacks its \"kind\" or \"config\" entry")
    if not weights.is_file():
        raise CheckpointError(f"{folder} is incomplete: {WEIGHTS_FILE} is missing")
    try:
        state_dict = read_safetensors(weights)
    except OSError as err:
        raise CheckpointError(f"cannot read {weights}: {err}") from None
    return meta["kind"], meta["config"], state_dict, dict(meta.get("extra") or {})


def save_codec(codec: "Codec", folder: str | Path, overwrite: bool = False) -> Path:
    """Save a codec in wavecraft format. Loading names it after the folder; the name it had is kept
    in `extra["source_name"]` for the record."""
    extra = {"source_name": codec.name}
    return save_native(folder, "codec", codec.config, codec.state_dict(), extra, overwrite=overwrite)


def store_half(folder: str | Path) -> list[Path]:
    """Rewrite every wavecraft weights file under `folder` with float16 storage (halves the size).

    Loading casts weights back to the modules' dtype, so a half-stored model runs in float32 as
    before, with weights rounded to float16 (relative error <= 2^-11). Returns the files rewritten.
    """
    from safetensors import safe_open
    from safetensors.torch import save_file

    done = []
    for path in sorted(Path(folder).rglob(WEIGHTS_FILE)):
        if not (path.parent / CONFIG_FILE).is_file():
            continue
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata()
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        tensors = {k: v.half() if v.dtype == torch.float32 else v for k, v in tensors.items()}
        tmp = path.with_name(path.name + ".tmp")
        save_file(tensors, str(tmp), metadata=metadata)
        tmp.replace(path)
        done.append(path)
    return done


def codec_from_native(folder: str | Path, name: str | None = None) -> "Codec":
    from ...codec.config import CodecConfig
    from ...codec.model import Codec

    kind, cfg, state_dict, extra = load_native(folder)
    if kind != "codec":
        raise CheckpointError(f"{folder} holds a wavecraft {kind!r} checkpoint, not a codec")
    codec = Codec(CodecConfig.from_dict(cfg), name=name or Path(folder).name)
    load_state(codec, state_dict, str(folder))
    return codec


def load_state(module: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], source: str, assign: bool = False) -> None:
    """Strict load with an error that names the checkpoint and a few offending keys.

    assign: the module takes the checkpoint's tensors themselves (cast to its dtypes) instead of
    copying them into its own; for modules built on the meta device (see `build_lm`)."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    wrong = sorted(k for k in set(own) & set(state_dict) if tuple(own[k].shape) != tuple(state_dict[k].shape))
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} with wrong shapes (e.g. {k}: {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)})")
        raise CheckpointError(f"checkpoint {source} does not match the model its config describes: " + "; ".join(parts))
    module.load_state_dict({k: v.to(own[k].dtype) if v.is_floating_point() else v for k, v in state_dict.items()},
                           assign=assign)


_INIT_FUNCTIONS = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "kaiming_uniform_",
                   "kaiming_normal_", "xavier_uniform_", "xavier_normal_")


@contextmanager
def _initialisation_skipped() -> Iterator[None]:
    """Module constructors run `torch.nn.init` on their new parameters; on the meta device those
    calls do nothing useful, yet the first one imports torch._dynamo (~1.2 s of start-up)."""
    saved = {name: getattr(torch.nn.init, name) for name in _INIT_FUNCTIONS}
    try:
        for name in _INIT_FUNCTIONS:
            setattr(torch.nn.init, name, lambda tensor, *args, **kwargs: tensor)
        yield
    finally:
        for name, function in saved.items():
            setattr(torch.nn.init, name, function)


def build_lm(cfg: Any, state_dict: Mapping[str, torch.Tensor], source: str) -> Any:
    """An `LMModel` holding the checkpoint's tensors, without a second copy of the weights.

    The model is built on the meta device (no allocation, no random initialisation: both cost as
    much as the weights themselves for a large model) and its parameters are then assigned from
    `state_dict`, so loading peaks at about one copy of the weights instead of two."""
    from ...lm.model import LMModel

    with torch.device("meta"), _initialisation_skipped():
        lm = LMModel(cfg)
    load_state(lm, state_dict, source, assign=True)
    lm.init_fixed_buffers(lm.device)
    return lm
