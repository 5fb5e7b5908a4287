"""The EnCodec-style neural codec: `Codec`, its config, and `load_codec`."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import CodecConfig
from .model import Chunk, Codec, CodecTrainOutput

if TYPE_CHECKING:
    import torch


def load_codec(name_or_path: str | Any, device: "str | torch.device | None" = None) -> Codec:
    """Load a codec from a Hugging Face folder, an audiocraft `compression_state_dict.bin`, a
    wavecraft folder, or a repo id (e.g. `facebook/encodec_32khz`) found in the Hugging Face cache.
    Never downloads; see docs/checkpoints.md."""
    from ..models.loaders import load_codec as _load

    return _load(name_or_path, device=device)


__all__ = ["Chunk", "Codec", "CodecConfig", "CodecTrainOutput", "load_codec"]
