"""The contract between conditioners and the language model.

A conditioner maps one attribute of a batch (a list of descriptions, melody waveforms, ...) to a
`ConditionTensors`: embeddings already projected to the LM width plus a validity mask. A `None`
entry in the batch is the *null condition* used by classifier-free guidance; conditioners return
all-zero embeddings with an all-False mask for it, so cross-attention to it contributes nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ConditionTensors:
    embeddings: torch.Tensor  # [B, S, D] float, D = LM width after the conditioner's projection
    mask: torch.Tensor  # [B, S] bool, True where the position carries information

    def __post_init__(self) -> None:
        if self.embeddings.dim() != 3 or self.mask.shape != self.embeddings.shape[:2]:
            raise ValueError(
                f"embeddings must be [B, S, D] and mask [B, S]; got {tuple(self.embeddings.shape)} "
                f"and {tuple(self.mask.shape)}"
            )

    @property
    def batch_size(self) -> int:
        return self.embeddings.shape[0]

    def repeat_null(self) -> "ConditionTensors":
        """The same batch with every row replaced by the null condition (zeros, masked out)."""
        return ConditionTensors(torch.zeros_like(self.embeddings), torch.zeros_like(self.mask))

    def cat(self, other: "ConditionTensors") -> "ConditionTensors":
        """Stack two batches along the batch axis (used to batch conditional and null rows for CFG)."""
        if self.embeddings.shape[1:] != other.embeddings.shape[1:]:
            raise ValueError("cannot concatenate conditions of different lengths or widths")
        return ConditionTensors(
            torch.cat([self.embeddings, other.embeddings], dim=0), torch.cat([self.mask, other.mask], dim=0)
        )
