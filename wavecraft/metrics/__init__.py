"""Evaluation metrics: codec reconstruction, melody adherence, LM cross-entropy/perplexity."""
from .audio import mel_distance, si_snr, stft_distance
from .chroma import chroma, chroma_cosine_similarity

__all__ = ["chroma", "chroma_cosine_similarity", "mel_distance", "si_snr", "stft_distance"]
