"""wavecraft: text-to-music and text-to-sound generation and neural audio compression.

The public API is re-exported lazily so `import wavecraft` stays fast (torch loads on first use).
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_codec": "wavecraft.codec",
    "Codec": "wavecraft.codec",
    "CodecConfig": "wavecraft.codec",
    "audio_read": "wavecraft.audio",
    "audio_write": "wavecraft.audio",
    "compress_file": "wavecraft.compress",
    "decompress_file": "wavecraft.compress",
    "WavecraftError": "wavecraft.errors",
    "MusicGen": "wavecraft.models.musicgen",
    "AudioGen": "wavecraft.models.audiogen",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'wavecraft' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
