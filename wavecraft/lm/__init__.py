"""The token language model: patterns, transformer, sampling and the generation loop."""
from .generate import GenerationParams, generate_codes, stream_codes
from .model import Conditions, LMConfig, LMModel
from .patterns import Pattern, make_pattern

__all__ = ["Conditions", "GenerationParams", "LMConfig", "LMModel", "Pattern", "generate_codes", "make_pattern", "stream_codes"]
