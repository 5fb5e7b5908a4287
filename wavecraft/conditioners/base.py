"""The contract between conditioners and the language model, and the conditioner base class.

A conditioner maps one attribute of a batch (a list of descriptions, melody waveforms, ...) to a
`ConditionTensors`: embeddings already projected to the LM width plus a validity mask. A `None`
entry in the batch is the *null condition* used by classifier-free guidance; conditioners return
all-zero embeddings with an all-False mask for it, so cross-attention to it contributes nothing.
(The chroma conditioner is the one documented exception: Meta's melody models were trained with a
one-hot "C" chroma as their null melody, so that is what it emits by default.)

Work is split in two steps, as in audiocraft: `tokenize` does the cheap CPU part (string
tokenisation, padding, resampling) and returns plain tensors; `forward` runs the encoder on the
conditioner's device and projects to the LM width with `output_proj`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch import nn

from ..errors import ConfigError


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

    @property
    def length(self) -> int:
        return self.embeddings.shape[1]

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

    def pad_to(self, length: int) -> "ConditionTensors":
        """Right-pad the sequence axis to `length` with masked-out zeros (to batch unequal lengths)."""
        extra = length - self.length
        if extra < 0:
            raise ValueError(f"cannot pad a condition of length {self.length} down to {length}")
        if extra == 0:
            return self
        emb = torch.nn.functional.pad(self.embeddings, (0, 0, 0, extra))
        mask = torch.nn.functional.pad(self.mask, (0, extra), value=False)
        return ConditionTensors(emb, mask)

    def to(self, *args: Any, **kwargs: Any) -> "ConditionTensors":
        """Move the embeddings (device and/or dtype) and the mask (device only)."""
        emb = self.embeddings.to(*args, **kwargs)
        return ConditionTensors(emb, self.mask.to(emb.device))


def is_null_text(text: str | None) -> bool:
    """audiocraft treats a missing and an empty description alike: both are the null condition."""
    return text is None or (isinstance(text, str) and text.strip() == "")


def check_text_batch(batch: Sequence[Any], what: str) -> list[str | None]:
    if isinstance(batch, str):
        raise TypeError(f"{what}: expected a list of strings (one per batch row), got a single string")
    rows = list(batch)
    for i, item in enumerate(rows):
        if item is not None and not isinstance(item, str):
            raise TypeError(f"{what}: row {i} must be a string or None, got {type(item).__name__}")
    return rows


class Conditioner(nn.Module):
    """Base class: `tokenize(batch) -> dict` on the CPU, then `forward(tokenized) -> ConditionTensors`.

    `output_proj` maps the encoder width `dim` to the LM width `output_dim`. With `project=False`
    it is the identity (Hugging Face's MusicGen skips `enc_to_dec_proj` when both widths agree).

    A frozen pretrained encoder (T5, MiniLM) is held outside the module tree, like audiocraft
    does, so it stays out of `state_dict()` (checkpoints only carry what was trained) and out of
    `.train()`; `.to()` / `.cuda()` / `.half()` still move it along with the projection.
    """

    def __init__(self, dim: int, output_dim: int, project: bool = True) -> None:
        super().__init__()
        if dim <= 0 or output_dim <= 0:
            raise ConfigError(f"conditioner widths must be positive, got dim={dim}, output_dim={output_dim}")
        if not project and dim != output_dim:
            raise ConfigError(
                f"project=False needs the encoder width ({dim}) to equal the LM width ({output_dim}); "
                "set project=True to learn an output projection"
            )
        self.dim = dim
        self.output_dim = output_dim
        self.output_proj: nn.Module = nn.Linear(dim, output_dim) if project else nn.Identity()
        self._frozen: list[nn.Module] = []

    # -- the two steps ------------------------------------------------------------------------
    def tokenize(self, batch: Sequence[Any]) -> dict[str, Any]:
        raise NotImplementedError

    def forward(self, tokenized: dict[str, Any]) -> ConditionTensors:  # type: ignore[override]
        raise NotImplementedError

    def condition(self, batch: Sequence[Any], **tokenize_kwargs: Any) -> ConditionTensors:
        """Both steps at once: the usual entry point outside training loops."""
        return self(self.tokenize(batch, **tokenize_kwargs))

    # -- devices and frozen encoders ------------------------------------------------------------
    def _hold_frozen(self, name: str, module: nn.Module) -> None:
        """Attach `module` as attribute `name` without registering it as a sub-module."""
        module.eval()
        module.requires_grad_(False)
        object.__setattr__(self, name, module)
        self._frozen.append(module)

    def _apply(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> "Conditioner":
        super()._apply(fn, *args, **kwargs)
        for module in self._frozen:
            module._apply(fn, *args, **kwargs)
        return self

    @property
    def device(self) -> torch.device:
        for module in [self, *self._frozen]:
            for tensor in module.parameters():
                return tensor.device
            for tensor in module.buffers():
                return tensor.device
        return torch.device("cpu")

    @property
    def proj_dtype(self) -> torch.dtype:
        """The dtype the projection expects (float32 unless the module was cast)."""
        for tensor in self.output_proj.parameters():
            return tensor.dtype
        return torch.float32

    def _to_device(self, tokenized: dict[str, Any]) -> dict[str, Any]:
        device = self.device
        return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in tokenized.items()}

    def _project_masked(self, hidden: torch.Tensor, mask: torch.Tensor) -> ConditionTensors:
        """Project to the LM width, then zero masked positions (the order both Meta formats use).

        `torch.where` rather than a product: a degenerate encoder row (NaN from an all-padding
        input) must still come out as exact zeros.
        """
        emb = self.output_proj(hidden.to(self.proj_dtype))
        emb = torch.where(mask[..., None], emb, torch.zeros((), dtype=emb.dtype, device=emb.device))
        return ConditionTensors(emb, mask)
