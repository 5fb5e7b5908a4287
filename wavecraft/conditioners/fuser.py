"""Combine per-attribute conditions into what the LM consumes: a prefix, a cross source, a sum term.

The fuse map says, per attribute, how it reaches the LM:

    cross    keys/values of every layer's cross-attention; attributes concatenated along S
    prepend  positions placed before the token embeddings (MusicGen-melody: chroma, then text)
    sum      added to every token embedding ([B, 1, D] broadcasts over time)

Order is the fuse map's order, front to back, for both prefix and cross source: a fixed,
documented layout rather than "whatever order the dict of conditions happened to be built in".
audiocraft prepends each condition in front of the previous ones, so its *last* prepended
condition comes first; `fuse_map_from_audiocraft` turns its config into our map with that
order worked out.

Masks travel with the tensors. Note for parity with Meta's checkpoints: their LMs attend to the
whole prefix whatever its mask (padding positions are zero vectors, not hidden), while the cross
mask is honoured by Hugging Face's MusicGen; the LM decides what to do with each.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import torch

from ..config import Config
from ..errors import ConfigError
from .base import ConditionTensors

FUSE_METHODS = ("cross", "prepend", "sum")


@dataclass
class FuserConfig(Config):
    fuse: dict[str, str] = field(default_factory=lambda: {"description": "cross"})

    def __post_init__(self) -> None:
        for attr, method in self.fuse.items():
            if method not in FUSE_METHODS:
                raise ConfigError(f"fuse method for {attr!r} must be one of {list(FUSE_METHODS)}, got {method!r}")


@dataclass
class FusedConditions:
    prefix: ConditionTensors | None  # [B, P, D] placed before the token embeddings
    cross: ConditionTensors | None  # [B, S, D] cross-attention source
    sum: torch.Tensor | None  # [B, 1 or T, D] added to the token embeddings

    @property
    def prefix_length(self) -> int:
        return 0 if self.prefix is None else self.prefix.length


def _concat(parts: list[ConditionTensors]) -> ConditionTensors | None:
    if not parts:
        return None
    return ConditionTensors(
        torch.cat([p.embeddings for p in parts], dim=1), torch.cat([p.mask for p in parts], dim=1)
    )


class ConditionFuser:
    """Lays out conditions according to a fuse map (no parameters; pure tensor plumbing)."""

    def __init__(self, fuse: dict[str, str] | FuserConfig) -> None:
        self.config = fuse if isinstance(fuse, FuserConfig) else FuserConfig(fuse=dict(fuse))
        self.fuse = dict(self.config.fuse)

    def attributes(self, method: str) -> list[str]:
        return [a for a, m in self.fuse.items() if m == method]

    def __call__(self, conditions: dict[str, ConditionTensors]) -> FusedConditions:
        unknown = sorted(set(conditions) - set(self.fuse))
        if unknown:
            raise ConfigError(f"conditions {unknown} have no fuse method; the fuse map covers {list(self.fuse)}")
        present = [a for a in self.fuse if a in conditions]  # fuse-map order, not dict order
        if not present:
            return FusedConditions(None, None, None)
        first = conditions[present[0]]
        for attr in present:
            cond = conditions[attr]
            if cond.batch_size != first.batch_size or cond.embeddings.shape[-1] != first.embeddings.shape[-1]:
                raise ValueError(
                    f"condition {attr!r} is [B={cond.batch_size}, D={cond.embeddings.shape[-1]}] but "
                    f"{present[0]!r} is [B={first.batch_size}, D={first.embeddings.shape[-1]}]"
                )
        prefix = _concat([conditions[a] for a in present if self.fuse[a] == "prepend"])
        cross = _concat([conditions[a] for a in present if self.fuse[a] == "cross"])
        return FusedConditions(prefix, cross, self._sum([(a, conditions[a]) for a in present if self.fuse[a] == "sum"]))

    @staticmethod
    def _sum(parts: list[tuple[str, ConditionTensors]]) -> torch.Tensor | None:
        total: torch.Tensor | None = None
        for attr, cond in parts:
            term = cond.embeddings * cond.mask[..., None].to(cond.embeddings.dtype)
            if total is not None and 1 not in (term.shape[1], total.shape[1]) and term.shape[1] != total.shape[1]:
                raise ValueError(f"sum condition {attr!r} has length {term.shape[1]}, others {total.shape[1]}")
            total = term if total is None else total + term
        return total


def fuse_map_from_audiocraft(fuser_cfg: dict, condition_order: Iterable[str]) -> dict[str, str]:
    """Our fuse map from an audiocraft `fuser` config section.

    `condition_order` is the order audiocraft computes conditions in: text attributes in
    conditioner order, then waveform ones (e.g. ["description", "self_wav"] for MusicGen-melody,
    which yields prefix order [self_wav, description]).
    """
    if fuser_cfg.get("cross_attention_pos_emb"):
        raise ConfigError("audiocraft fuser option cross_attention_pos_emb=true is not supported")
    method_of: dict[str, str] = {}
    for method in ("cross", "prepend", "sum", "input_interpolate"):
        for attr in fuser_cfg.get(method) or []:
            if method == "input_interpolate":
                raise ConfigError(f"audiocraft fuse method input_interpolate (attribute {attr!r}) is not supported")
            method_of[attr] = method
    order = [a for a in condition_order if a in method_of] + [a for a in method_of if a not in set(condition_order)]
    prepends = [a for a in order if method_of[a] == "prepend"][::-1]  # each goes in front of the last
    rest = [a for a in order if method_of[a] != "prepend"]
    return {a: method_of[a] for a in prepends + rest}
