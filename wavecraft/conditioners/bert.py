"""A BERT encoder in plain torch (the MiniLM conditioner's network) and its word-piece tokenizer.

transformers' `BertModel` costs ~2.7 s of imports in every process (transformers itself, then
torch._dynamo through its masking utilities): more than loading the bundled music model and
generating 8 s with it. This is the same network (absolute positions, token types, post-norm
layers with exact GELU) reading the same checkpoint files: `config.json`, `model.safetensors` and
`tokenizer.json`, the last through the `tokenizers` library that transformers' fast tokenizer
wraps. tests/test_conditioners_bert.py holds both to transformers' outputs.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError


@dataclass
class BertConfig:
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12

    @classmethod
    def from_json(cls, path: Path) -> "BertConfig":
        try:
            raw = json.loads(path.read_text())
            if raw.get("hidden_act", "gelu") != "gelu" or raw.get("position_embedding_type", "absolute") != "absolute":
                raise CheckpointError(f"{path}: only BERT with exact GELU and absolute positions is supported")
            return cls(**{name: raw[name] for name in cls.__dataclass_fields__ if name in raw})
        except (OSError, ValueError, TypeError, KeyError) as err:
            raise CheckpointError(f"{path} is not a readable BERT config: {err}") from err


class _Embeddings(nn.Module):
    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.words = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.positions = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.types = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
        self.norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, ids: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        return self.norm(self.words(ids) + self.types(types) + self.positions(positions))


class _Layer(nn.Module):
    """Post-norm: x = LN(x + Attn(x)); x = LN(x + W2 GELU(W1 x))."""

    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        d, eps = cfg.hidden_size, cfg.layer_norm_eps
        self.heads = cfg.num_attention_heads
        self.query, self.key, self.value, self.attn_out = (nn.Linear(d, d) for _ in range(4))
        self.attn_norm = nn.LayerNorm(d, eps=eps)
        self.up, self.down = nn.Linear(d, cfg.intermediate_size), nn.Linear(cfg.intermediate_size, d)
        self.out_norm = nn.LayerNorm(d, eps=eps)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        B, S, D = x.shape

        def heads(proj: nn.Linear) -> torch.Tensor:
            return proj(x).view(B, S, self.heads, D // self.heads).transpose(1, 2)

        a = F.scaled_dot_product_attention(heads(self.query), heads(self.key), heads(self.value), attn_mask=key_mask)
        x = self.attn_norm(x + self.attn_out(a.transpose(1, 2).reshape(B, S, D)))
        return self.out_norm(x + self.down(F.gelu(self.up(x))))


@dataclass
class BertOutput:
    last_hidden_state: torch.Tensor  # [B, S, D]


class BertEncoder(nn.Module):
    """BERT without its pooler: token ids [B, S] -> hidden states [B, S, D]."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = _Embeddings(config)
        self.layers = nn.ModuleList(_Layer(config) for _ in range(config.num_hidden_layers))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> BertOutput:
        types = token_type_ids if token_type_ids is not None else torch.zeros_like(input_ids)
        x = self.embed(input_ids, types)
        key_mask = None
        if attention_mask is not None and not bool(attention_mask.all()):
            key_mask = attention_mask.bool()[:, None, None, :]  # padded keys are never attended
        for layer in self.layers:
            x = layer(x, key_mask)
        return BertOutput(x)

    @classmethod
    def from_folder(cls, folder: Path) -> "BertEncoder":
        from safetensors.torch import load_file

        model = cls(BertConfig.from_json(folder / "config.json"))
        try:
            checkpoint = load_file(str(folder / "model.safetensors"))
        except Exception as err:  # safetensors raises its own error types for damaged files
            raise CheckpointError(f"{folder / 'model.safetensors'} could not be read: {err}") from err
        state = {}
        for key, tensor in checkpoint.items():
            ours = _rename(key)
            if ours is not None:
                state[ours] = tensor
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise CheckpointError(f"{folder} does not hold a BERT of this shape (missing {missing[:3]}, "
                                  f"unexpected {unexpected[:3]})")
        return model.eval()


_RENAMES = [  # checkpoint (transformers' BertModel) -> ours
    (r"embeddings\.word_embeddings\.", "embed.words."),
    (r"embeddings\.position_embeddings\.", "embed.positions."),
    (r"embeddings\.token_type_embeddings\.", "embed.types."),
    (r"embeddings\.LayerNorm\.", "embed.norm."),
    (r"encoder\.layer\.(\d+)\.attention\.self\.(query|key|value)\.", r"layers.\1.\2."),
    (r"encoder\.layer\.(\d+)\.attention\.output\.dense\.", r"layers.\1.attn_out."),
    (r"encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\.", r"layers.\1.attn_norm."),
    (r"encoder\.layer\.(\d+)\.intermediate\.dense\.", r"layers.\1.up."),
    (r"encoder\.layer\.(\d+)\.output\.dense\.", r"layers.\1.down."),
    (r"encoder\.layer\.(\d+)\.output\.LayerNorm\.", r"layers.\1.out_norm."),
]


def _rename(key: str) -> str | None:
    """Our name for a checkpoint key; None for what the encoder does not use (pooler, position ids)."""
    key = key.removeprefix("bert.")
    if key.startswith("pooler.") or key == "embeddings.position_ids":
        return None
    for pattern, replacement in _RENAMES:
        new, n = re.subn("^" + pattern, replacement, key)
        if n:
            return new
    return key  # kept: load_state_dict reports it as unexpected


class WordPieceTokenizer:
    """`tokenizer.json` through `tokenizers`, called like transformers' tokenizers: right padding to
    the longest row, truncation to `max_length` (special tokens included)."""

    def __init__(self, path: Path) -> None:
        from tokenizers import Tokenizer

        try:
            self.backend = Tokenizer.from_file(str(path))
        except Exception as err:  # tokenizers raises a bare Exception for malformed files
            raise CheckpointError(f"{path} is not a readable tokenizer: {err}") from err
        self.backend.no_padding()
        self.backend.no_truncation()
        padding = json.loads(path.read_text()).get("padding") or {}
        self.pad_id = int(padding.get("pad_id", 0))

    def __call__(self, texts: Sequence[str], return_tensors: str = "pt", padding: bool = True,
                 truncation: bool = False, max_length: int | None = None) -> dict[str, Any]:
        if return_tensors != "pt" or not padding:
            raise ValueError("WordPieceTokenizer returns padded torch tensors only")
        if truncation and max_length is not None:
            self.backend.enable_truncation(max_length)
        else:
            self.backend.no_truncation()
        rows = self.backend.encode_batch(list(texts))
        width = max((len(r.ids) for r in rows), default=0)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        types = torch.zeros(len(rows), width, dtype=torch.long)
        mask = torch.zeros(len(rows), width, dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r.ids)
            ids[i, :n] = torch.tensor(r.ids)
            types[i, :n] = torch.tensor(r.type_ids)
            mask[i, :n] = 1
        return {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}
