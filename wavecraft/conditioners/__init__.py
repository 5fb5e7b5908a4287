"""Conditioners turn user inputs (text, melody, categories) into tensors the LM attends to.

Submodules import transformers lazily (only when a text encoder is built), so importing this
package stays cheap.
"""
from .base import ConditionTensors, Conditioner
from .chroma import (
    ChromaConditioner,
    ChromaConditionerConfig,
    ChromaConfig,
    ChromaExtractor,
    PITCH_CLASSES,
    chroma_filter_bank,
)
from .fuser import ConditionFuser, FusedConditions, FuserConfig, fuse_map_from_audiocraft
from .lut import LUTConditioner, LUTConditionerConfig, build_vocab
from .minilm import MiniLMConditioner, MiniLMConditionerConfig, load_minilm, minilm_folder
from .t5 import T5Conditioner, T5ConditionerConfig, load_t5

__all__ = [
    "ChromaConditioner",
    "ChromaConditionerConfig",
    "ChromaConfig",
    "ChromaExtractor",
    "ConditionFuser",
    "ConditionTensors",
    "Conditioner",
    "FusedConditions",
    "FuserConfig",
    "LUTConditioner",
    "LUTConditionerConfig",
    "MiniLMConditioner",
    "MiniLMConditionerConfig",
    "PITCH_CLASSES",
    "T5Conditioner",
    "T5ConditionerConfig",
    "build_vocab",
    "chroma_filter_bank",
    "fuse_map_from_audiocraft",
    "load_minilm",
    "load_t5",
    "minilm_folder",
]
