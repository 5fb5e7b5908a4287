"""Glue the generation models need around the LM: conditioners from config, the stereo codec, the
incremental decode behind `generate_stream` and the progress bar over a generation's windows.

Conditioner specs are plain dicts `{"type": "t5" | "minilm" | "lut" | "chroma", **config}` so a
model's config.json can name any mix of them; `build_conditioner` turns one into a module.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..conditioners import (
    ChromaConditioner,
    ChromaConditionerConfig,
    Conditioner,
    LUTConditioner,
    LUTConditionerConfig,
    MiniLMConditioner,
    MiniLMConditionerConfig,
    T5Conditioner,
    T5ConditionerConfig,
)
from ..errors import CheckpointError, ConfigError, WavecraftError

CONDITIONER_TYPES: dict[str, tuple[type, type]] = {
    "t5": (T5Conditioner, T5ConditionerConfig),
    "minilm": (MiniLMConditioner, MiniLMConditionerConfig),
    "lut": (LUTConditioner, LUTConditionerConfig),
    "chroma": (ChromaConditioner, ChromaConditionerConfig),
}
TEXT_TYPES = ("t5", "minilm")


def conditioner_type(cond: Conditioner) -> str:
    for name, (cls, _) in CONDITIONER_TYPES.items():
        if isinstance(cond, cls):
            return name
    raise ConfigError(f"unsupported conditioner class {type(cond).__name__}")


def conditioner_spec(cond: Conditioner) -> dict[str, Any]:
    return {"type": conditioner_type(cond), **cond.config.to_dict()}  # type: ignore[attr-defined]


def build_conditioner(spec: dict[str, Any], folder: Path | None = None) -> Conditioner:
    """A conditioner from its spec. Relative encoder paths are resolved against `folder` (the
    model's own folder), so a saved model can carry its text encoder in a sub-folder."""
    spec = dict(spec)
    kind = spec.pop("type", None)
    if kind not in CONDITIONER_TYPES:
        raise ConfigError(f"conditioner type must be one of {sorted(CONDITIONER_TYPES)}, got {kind!r}")
    cls, cfg_cls = CONDITIONER_TYPES[kind]
    cfg = cfg_cls.from_dict(spec)
    if folder is not None:
        key = "name" if kind == "t5" else "path" if kind == "minilm" else None
        value = getattr(cfg, key) if key else None
        if isinstance(value, str) and not Path(value).is_absolute() and (folder / value).is_dir():
            cfg = cfg.replace(**{key: str(folder / value)})
    return cls(cfg)


class InterleavedStereoCodec(nn.Module):
    """A mono codec run once per channel, codes interleaved L0, R0, L1, R1, ... ([B, 2K, F]).

    This is how Meta's stereo MusicGen models tokenise audio (and how transformers decodes them:
    even codebooks are the left channel, odd ones the right).
    """

    def __init__(self, mono: nn.Module) -> None:
        super().__init__()
        if getattr(mono, "channels", 1) != 1:
            raise CheckpointError("the stereo wrapper needs a mono codec")
        self.mono = mono

    @property
    def sample_rate(self) -> int:
        return self.mono.sample_rate

    @property
    def frame_rate(self) -> float:
        return self.mono.frame_rate

    @property
    def cardinality(self) -> int:
        return self.mono.cardinality

    @property
    def channels(self) -> int:
        return 2

    @property
    def num_codebooks(self) -> int:
        return 2 * self.mono.num_codebooks

    def encode(self, wav: torch.Tensor) -> tuple[torch.Tensor, None]:
        left, _ = self.mono.encode(wav[:, :1])
        right, _ = self.mono.encode(wav[:, 1:2])
        return torch.stack([left, right], dim=2).flatten(1, 2), None

    def decode(self, codes: torch.Tensor, scale: Any = None) -> torch.Tensor:
        return torch.cat([self.mono.decode(codes[:, 0::2]), self.mono.decode(codes[:, 1::2])], dim=1)


class DecodeStream:
    """Incremental decode of MusicGen codes: the codec's streaming decoder (one per channel for
    interleaved stereo); a codec that cannot stream decodes everything in `finish`."""

    def __init__(self, codec: nn.Module) -> None:
        self.codec = codec
        mono = getattr(codec, "mono", None)  # InterleavedStereoCodec: codebooks L0, R0, L1, R1, ...
        self.pending: list[torch.Tensor] = []
        try:
            self.streams = [mono.decode_stream(), mono.decode_stream()] if mono is not None else [codec.decode_stream()]
        except (WavecraftError, AttributeError):
            self.streams = []

    def _each(self, codes: torch.Tensor | None, flush: bool) -> torch.Tensor:
        parts = [codes] if len(self.streams) == 1 else [None if codes is None else codes[:, c::2] for c in (0, 1)]
        out = []
        for stream, part in zip(self.streams, parts):
            pieces = [stream.step(part)] if part is not None else []
            if flush:
                pieces.append(stream.flush())
            out.append(torch.cat(pieces, dim=-1))
        return torch.cat(out, dim=1).float()

    def step(self, codes: torch.Tensor) -> torch.Tensor | None:
        if not self.streams:
            self.pending.append(codes)
            return None
        return self._each(codes, flush=False)

    def finish(self, codes: torch.Tensor | None) -> torch.Tensor:
        if not self.streams:
            self.pending += [] if codes is None else [codes]
            with torch.no_grad():
                return self.codec.decode(torch.cat(self.pending, dim=-1)).float()
        return self._each(codes, flush=True)


class GenerationProgress:
    """tqdm bar over all windows of one generation (steps, steps/s, ETA), or a user callback."""

    def __init__(self, total: int, show: bool, callback: Callable[[int, int], None] | None) -> None:
        self.total, self.done, self.callback = total, 0, callback
        self.bar = None
        if show:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="step", desc="generating", leave=False, dynamic_ncols=True)

    def window(self, offset: int) -> Callable[[int, int], None]:
        def step(done: int, _total: int) -> None:
            now = offset + done
            if self.bar is not None:
                self.bar.update(now - self.done)
            self.done = now
            if self.callback is not None:
                self.callback(now, self.total)

        return step

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
