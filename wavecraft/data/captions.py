"""Text captions built from sidecar metadata, with MusicGen's training augmentations.

MusicGen trains on a caption that is sometimes just the description, sometimes the description
followed by other metadata fields ("genre: rock. bpm: 120"), and sometimes only those fields. That
teaches the model to follow both free text and tag-like prompts. Per-call randomness comes from a
`random.Random` passed in, so a dataset item's caption is a pure function of its seed.
"""
from __future__ import annotations

import dataclasses
import random
from typing import Any

from ..config import Config

# Fields that may be merged into the caption, in audiocraft's MusicInfo naming.
MERGEABLE_FIELDS = ("genre", "moods", "keywords", "instrument", "key", "bpm", "title", "artist")


@dataclasses.dataclass
class CaptionConfig(Config):
    """Probabilities of the caption augmentations (MusicGen's recipe uses 0.25 / 0.5 / 0.5)."""

    merge_text_p: float = 0.0  # chance to append the other metadata fields to the caption
    drop_desc_p: float = 0.0  # when merging: chance to drop the free-text description
    drop_other_p: float = 0.0  # when merging: chance to drop each other field
    fields: tuple[str, ...] = MERGEABLE_FIELDS[:6]

    def __post_init__(self) -> None:
        for name in ("merge_text_p", "drop_desc_p", "drop_other_p"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value}")


def _field_text(value: Any) -> str | None:
    """Render a metadata value; lists become comma-separated, empties are dropped."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (list, tuple)):
        parts = [str(v).strip() for v in value if v is not None and str(v).strip()]
        return ", ".join(parts) if parts else None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, (int, float, str)):
        text = str(value).strip()
        return text or None
    return None


def plain_caption(info: dict[str, Any] | None) -> str | None:
    """The caption without augmentation: the description, or the fields when there is none."""
    if not info:
        return None
    description = _field_text(info.get("description"))
    if description:
        return description
    pairs = [f"{k}: {t}" for k in MERGEABLE_FIELDS if (t := _field_text(info.get(k)))]
    return ". ".join(pairs) or None


def build_caption(info: dict[str, Any] | None, rng: random.Random, config: CaptionConfig) -> str | None:
    """One training caption for `info` (a sidecar dict); None means "no text" (unconditional)."""
    if not info:
        return None
    description = _field_text(info.get("description"))
    if rng.random() >= config.merge_text_p:
        return description if description else plain_caption(info)
    pairs = []
    for key in config.fields:
        text = _field_text(info.get(key))
        if text is not None and rng.random() >= config.drop_other_p:
            pairs.append(f"{key}: {text}")
    # Field order is shuffled so the model does not learn a fixed template.
    rng.shuffle(pairs)
    if description and rng.random() < config.drop_desc_p:
        description = None
    parts = ([description.rstrip(". ")] if description else []) + pairs
    caption = ". ".join(parts).strip()
    return caption or None


def join_captions(first: str | None, second: str | None, joiner: str = ", ") -> str | None:
    """Caption of an AudioGen-style mix of two clips."""
    texts = [t for t in (first, second) if t]
    return joiner.join(texts) if texts else None
