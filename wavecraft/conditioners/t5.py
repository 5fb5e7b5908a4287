"""T5 text conditioner: the text encoder of Meta's MusicGen (t5-base) and AudioGen (t5-large).

The encoder is frozen and only `output_proj` is learned. Both of Meta's checkpoint formats compute

    emb = output_proj(T5(input_ids, attention_mask).last_hidden_state)
    emb = emb * attention_mask                      # projection first, then the mask

audiocraft's `T5Conditioner.forward` and Hugging Face's `MusicgenForConditionalGeneration`
(`text_encoder` -> `enc_to_dec_proj` -> `* attention_mask`) agree on that order; HF merely skips the
projection when the T5 width equals the decoder width, which `project=False` reproduces.

Weights are never downloaded: `name` is a local folder or a name already in the Hugging Face cache.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..config import Config
from ..errors import CheckpointError
from .base import ConditionTensors, Conditioner, check_text_batch, is_null_text


@dataclass
class T5ConditionerConfig(Config):
    name: str = "t5-base"  # a local folder, or a name in the HF cache (t5-base, google/t5-v1_1-base, ...)
    output_dim: int = 1024  # LM width
    project: bool = True  # False: identity projection (needs T5 width == LM width)
    max_length: int = 512  # longer descriptions are truncated (T5's own limit)
    word_dropout: float = 0.0  # training-time augmentation from audiocraft: drop words with this probability


def _candidates(name: str) -> list[str]:
    # `t5-base` moved to `google-t5/t5-base` on the Hub; a cache may hold either spelling.
    names = [name]
    if "/" not in name and name.startswith("t5-"):
        names.append(f"google-t5/{name}")
    if name.startswith("google-t5/"):
        names.append(name.split("/", 1)[1])
    return names


def spm_tokenizer(folder: Path) -> Any:
    """A T5 tokenizer built from `spiece.model` with sentencepiece alone.

    transformers 5 converts `spiece.model` through protobuf, which is not a dependency of ours;
    snapshots such as google/t5-v1_1-base ship no `tokenizer.json`, so read the pieces directly.
    """
    import sentencepiece
    from transformers import T5Tokenizer

    sp = sentencepiece.SentencePieceProcessor(model_file=str(folder / "spiece.model"))
    vocab = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
    return T5Tokenizer(vocab=vocab, extra_ids=100)


def load_t5(name: str, cache_dir: str | Path | None = None) -> tuple[nn.Module, Any]:
    """Load a `T5EncoderModel` and its tokenizer from a folder or the HF cache, never the network."""
    from transformers import T5EncoderModel
    from transformers.utils import logging as hf_logging

    path = Path(name).expanduser()
    is_folder = path.is_dir()
    if not is_folder and name.startswith((".", "/", "~")):
        raise CheckpointError(f"T5 text encoder folder not found: {path}")
    sources = [str(path)] if is_folder else _candidates(name)
    with _Quiet(hf_logging):
        for source in sources:
            try:
                encoder = T5EncoderModel.from_pretrained(source, local_files_only=True, cache_dir=cache_dir)
            except (OSError, ValueError) as err:
                if is_folder:
                    raise CheckpointError(
                        f"{path} does not hold a T5 encoder ({err}); it needs config.json and "
                        "model.safetensors (or pytorch_model.bin)"
                    ) from None
                continue
            return encoder, _load_tokenizer(source, name, cache_dir)
    hub = name if "/" in name or not name.startswith("t5-") else f"google-t5/{name}"
    raise CheckpointError(
        f"T5 text encoder {name!r} is not available offline (looked for a folder of that name and in the "
        f"Hugging Face cache{' at ' + str(cache_dir) if cache_dir else ''}). wavecraft never downloads weights: "
        f"on a machine with network run `hf download {hub}` (or `huggingface-cli download {hub}`) and copy "
        "the cache over, or pass a folder holding config.json, model.safetensors and tokenizer.json or "
        "spiece.model"
    )


class _Quiet:
    """Silence transformers' warnings and progress bars while probing: a miss ends in our message."""

    def __init__(self, hf_logging: Any) -> None:
        self.hf = hf_logging

    def __enter__(self) -> None:
        self.level = self.hf.get_verbosity()
        self.bars = self.hf.is_progress_bar_enabled()
        self.hf.set_verbosity_error()
        self.hf.disable_progress_bar()

    def __exit__(self, *exc: Any) -> None:
        self.hf.set_verbosity(self.level)
        if self.bars:
            self.hf.enable_progress_bar()


def _load_tokenizer(source: str, name: str, cache_dir: str | Path | None) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source, local_files_only=True, cache_dir=cache_dir)
    except (OSError, ValueError) as err:
        folder = _find_spiece(source, cache_dir)
        if folder is None:
            raise CheckpointError(
                f"T5 weights for {name!r} were found but not its tokenizer ({err}); put tokenizer.json or "
                "spiece.model next to config.json"
            ) from None
        return spm_tokenizer(folder)


def _find_spiece(source: str, cache_dir: str | Path | None) -> Path | None:
    if (Path(source) / "spiece.model").is_file():
        return Path(source)
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(source, "spiece.model", cache_dir=cache_dir)
    except Exception:  # not installed, or `source` is not a valid repo id: no cached file then
        return None
    return Path(hit).parent if isinstance(hit, str) else None


class T5Conditioner(Conditioner):
    """Frozen T5 encoder + learned `output_proj`; per-token outputs for cross-attention."""

    def __init__(
        self,
        config: T5ConditionerConfig,
        encoder: nn.Module | None = None,
        tokenizer: Any = None,
        cache_dir: str | Path | None = None,
    ) -> None:
        if (encoder is None) != (tokenizer is None):
            raise ValueError("pass both a T5 encoder and its tokenizer, or neither (to load config.name)")
        if encoder is None:
            encoder, tokenizer = load_t5(config.name, cache_dir=cache_dir)
        super().__init__(int(encoder.config.d_model), config.output_dim, project=config.project)
        self.config = config
        self.tokenizer = tokenizer
        self.encoder: nn.Module
        self._hold_frozen("encoder", encoder)

    @classmethod
    def from_modules(
        cls, encoder: nn.Module, tokenizer: Any, proj: nn.Linear | None, output_dim: int | None = None
    ) -> "T5Conditioner":
        """Wrap objects a checkpoint already holds (HF MusicGen: `text_encoder`, `enc_to_dec_proj`)."""
        width = int(encoder.config.d_model)
        out = proj.out_features if proj is not None else (output_dim or width)
        name = str(getattr(encoder, "name_or_path", "") or "t5")
        cond = cls(T5ConditionerConfig(name=name, output_dim=out, project=proj is not None), encoder, tokenizer)
        if proj is not None:
            cond.output_proj.load_state_dict(proj.state_dict())
        return cond

    def tokenize(self, batch: Sequence[str | None]) -> dict[str, Any]:
        rows = check_text_batch(batch, "T5Conditioner")
        texts = ["" if is_null_text(x) else str(x) for x in rows]
        if self.training and self.config.word_dropout > 0:
            texts = [" ".join(w for w in t.split(" ") if random.random() >= self.config.word_dropout) for t in texts]
        # As in audiocraft, a description whose every word was dropped becomes the null condition.
        null = [is_null_text(t) for t in texts]
        enc = self.tokenizer(
            texts, return_tensors="pt", padding=True, truncation=True, max_length=self.config.max_length
        )
        mask = enc["attention_mask"].bool()
        # The encoder sees the tokenizer's own mask; the LM sees null rows fully masked.
        return {
            "input_ids": enc["input_ids"],
            "encoder_mask": enc["attention_mask"],
            "mask": mask & ~torch.tensor(null, dtype=torch.bool)[:, None],
        }

    def forward(self, tokenized: dict[str, Any]) -> ConditionTensors:  # type: ignore[override]
        t = self._to_device(tokenized)
        with torch.no_grad():
            hidden = self.encoder(input_ids=t["input_ids"], attention_mask=t["encoder_mask"]).last_hidden_state
        return self._project_masked(hidden, t["mask"])
