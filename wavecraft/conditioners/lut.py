"""Lookup-table conditioner for categorical attributes (genre, instrument, mood, key ...).

Unlike audiocraft's hashing LUT, the vocabulary is explicit: built once from the training metadata
with `build_vocab` and stored in the config, so a checkpoint knows exactly which values it was
trained on and a value it never saw becomes the null condition instead of a hash collision.
A row may be one value or a list of values (`moods`, `keywords`): one position per value.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import torch
from torch import nn

from ..config import Config
from ..errors import ConfigError
from .base import ConditionTensors, Conditioner

Value = str | None
Row = Value | Sequence[Value]


def normalize_value(value: Any, lowercase: bool = True) -> str | None:
    """Canonical spelling of one category value; None for missing/empty."""
    if value is None:
        return None
    text = " ".join(str(value).split())
    if not text:
        return None
    return text.lower() if lowercase else text


def build_vocab(
    values: Iterable[Row], min_count: int = 1, max_size: int | None = None, lowercase: bool = True
) -> list[str]:
    """Vocabulary from training metadata: most frequent first, ties alphabetical (deterministic)."""
    counts: Counter[str] = Counter()
    for row in values:
        items = [row] if row is None or isinstance(row, str) else list(row)
        for item in items:
            norm = normalize_value(item, lowercase)
            if norm is not None:
                counts[norm] += 1
    ranked = sorted((v for v, c in counts.items() if c >= min_count), key=lambda v: (-counts[v], v))
    return ranked[:max_size] if max_size is not None else ranked


@dataclass
class LUTConditionerConfig(Config):
    vocab: list[str] = field(default_factory=list)  # from build_vocab; index = embedding row
    dim: int = 64  # embedding width (kept small; output_proj maps to the LM width)
    output_dim: int = 512  # LM width
    lowercase: bool = True

    def __post_init__(self) -> None:
        if not self.vocab:
            raise ConfigError("LUTConditionerConfig.vocab is empty: build it with build_vocab(training values)")
        normed = [normalize_value(v, self.lowercase) for v in self.vocab]
        if any(v is None for v in normed) or len(set(normed)) != len(normed):
            raise ConfigError("LUTConditionerConfig.vocab must hold distinct non-empty values")


class LUTConditioner(Conditioner):
    """Embedding table + `output_proj`; unknown and missing values are the null condition."""

    def __init__(self, config: LUTConditionerConfig) -> None:
        super().__init__(config.dim, config.output_dim)
        self.config = config
        self.index = {normalize_value(v, config.lowercase): i for i, v in enumerate(config.vocab)}
        self.embed = nn.Embedding(len(config.vocab), config.dim)

    def lookup(self, value: Any) -> int | None:
        norm = normalize_value(value, self.config.lowercase)
        return None if norm is None else self.index.get(norm)

    def tokenize(self, batch: Sequence[Row]) -> dict[str, Any]:
        if isinstance(batch, str):
            raise TypeError("LUTConditioner: expected a list with one value (or list of values) per row")
        rows = [[r] if r is None or isinstance(r, str) else list(r) for r in batch]
        ids = [[self.lookup(v) for v in row] for row in rows]
        # Known values only; a row with none left is one masked position (the null condition).
        ids = [[i for i in row if i is not None] or [None] for row in ids]
        length = max((len(r) for r in ids), default=1)
        tokens = torch.zeros(len(ids), length, dtype=torch.long)
        mask = torch.zeros(len(ids), length, dtype=torch.bool)
        for b, row in enumerate(ids):
            for s, i in enumerate(row):
                if i is not None:
                    tokens[b, s] = i
                    mask[b, s] = True
        return {"tokens": tokens, "mask": mask}

    def forward(self, tokenized: dict[str, Any]) -> ConditionTensors:  # type: ignore[override]
        t = self._to_device(tokenized)
        return self._project_masked(self.embed(t["tokens"]), t["mask"])
