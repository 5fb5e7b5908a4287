"""Conditioners turn user inputs (text, melody, categories) into tensors the LM attends to."""
from .base import ConditionTensors

__all__ = ["ConditionTensors"]
