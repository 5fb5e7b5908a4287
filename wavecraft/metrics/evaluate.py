"""Evaluate models on a manifest: codec reconstruction, LM cross-entropy, melody adherence.

Each function reads the manifest's files (optionally only the first `max_files`, and at most
`max_seconds` of each), skips unreadable ones (counted in the result), and returns plain numbers:
means over files plus the count, ready to print or dump as JSON.
"""
from __future__ import annotations

import logging
import math
from typing import Any

import torch

from ..data.captions import plain_caption
from ..data.manifest import AudioMeta, ManifestError, load_info, read_manifest
from ..errors import ConfigError
from .audio import mel_distance, si_snr, stft_distance
from .chroma import chroma_cosine_similarity

logger = logging.getLogger(__name__)


def _files(manifest: str, max_files: int | None) -> list[AudioMeta]:
    metas = read_manifest(manifest)
    return metas[:max_files] if max_files else metas


def _read(meta: AudioMeta, sample_rate: int, channels: int, max_seconds: float | None) -> torch.Tensor:
    from ..audio import audio_read

    wav, _ = audio_read(meta.path, duration=max_seconds, sample_rate=sample_rate, channels=channels)
    return wav


def _info(meta: AudioMeta) -> dict[str, Any]:
    try:
        return load_info(meta) or {}
    except ManifestError as err:
        logger.warning("%s", err)
        return {}


def _mean(rows: list[dict[str, float]], skipped: int) -> dict[str, float]:
    if not rows:
        raise ManifestError(f"no file could be evaluated ({skipped} unreadable)")
    out = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}
    out["files"] = len(rows)
    out["skipped"] = skipped
    return out


@torch.no_grad()
def evaluate_codec(codec: Any, manifest: str, max_files: int | None = None, max_seconds: float | None = 10.0,
                   progress: bool = False) -> dict[str, float]:
    """SI-SNR (dB, higher is better), mel distance and STFT distance (lower is better), per file."""
    rows, skipped = [], 0
    metas = _files(manifest, max_files)
    device = next(codec.parameters()).device
    for meta in _progress(metas, progress, "codec eval"):
        try:
            wav = _read(meta, codec.sample_rate, codec.channels, max_seconds)[None]
        except Exception as err:  # noqa: BLE001 - a bad file is skipped, not fatal
            logger.warning("skipping %s: %s", meta.path, err)
            skipped += 1
            continue
        codes, scale = codec.encode(wav.to(device))
        out = codec.decode(codes, scale, length=wav.shape[-1]).cpu()
        rows.append({
            "si_snr": float(si_snr(out, wav)),
            "mel_distance": float(mel_distance(out, wav, codec.sample_rate)),
            "stft_distance": float(stft_distance(out, wav)),
        })
    return _mean(rows, skipped)


@torch.no_grad()
def evaluate_lm(model: Any, manifest: str, max_files: int | None = None, max_seconds: float | None = None,
                progress: bool = False) -> dict[str, float]:
    """Per-codebook cross-entropy (nats) and perplexity of `model` (a MusicGen) on each file's first
    `max_seconds` (default: the model's window), conditioned on the file's plain caption."""
    from ..models.components import TEXT_TYPES, conditioner_type
    from ..train.lm import LMTrainModule
    from ..train.losses import cross_entropy_per_codebook

    module = LMTrainModule(model.lm, dict(model.conditioners), dict(model.config.fuse)).eval()
    max_seconds = max_seconds or model.max_duration
    rows, skipped = [], 0
    for meta in _progress(_files(manifest, max_files), progress, "lm eval"):
        try:
            wav = _read(meta, model.sample_rate, model.audio_channels, max_seconds)[None]
        except Exception as err:  # noqa: BLE001
            logger.warning("skipping %s: %s", meta.path, err)
            skipped += 1
            continue
        info = _info(meta)
        codes, _ = model.codec.encode(wav.to(model.device))
        tokenized = {}
        for attr, cond in module.conditioners.items():
            kind = conditioner_type(cond)
            row = plain_caption(info) if kind in TEXT_TYPES else None if kind == "chroma" else info.get(attr)
            tokenized[attr] = cond.tokenize([row])
        logits = module(codes, tokenized)
        _, per_k = cross_entropy_per_codebook(logits, codes, torch.ones_like(codes, dtype=torch.bool))
        row = {f"ce_q{k}": float(v) for k, v in enumerate(per_k)}
        row["ce"] = float(per_k.mean())
        rows.append(row)
    out = _mean(rows, skipped)
    out["ppl"] = math.exp(min(out["ce"], 20.0))
    for k in range(model.lm.cfg.n_q):
        out[f"ppl_q{k}"] = math.exp(min(out[f"ce_q{k}"], 20.0))
    return out


@torch.no_grad()
def evaluate_melody(model: Any, manifest: str, max_files: int | None = None, duration: float = 8.0,
                    seed: int = 0, progress: bool = False) -> dict[str, float]:
    """Chroma cosine similarity between each file's first `duration` seconds (the melody) and what
    the model generates from it and the file's caption (1 = same pitch classes over time), and the
    baseline: the same caption and seed without the melody (`chroma_cosine_text_only`), which
    shares the caption's key, so the gap is what following the melody itself adds."""
    if not getattr(model, "supports_melody", False):
        raise ConfigError(f"model {model.name} has no melody conditioner; melody evaluation needs a melody model")
    model.set_generation_params(duration=duration, seed=seed)
    rows, skipped = [], 0
    for meta in _progress(_files(manifest, max_files), progress, "melody eval"):
        try:
            melody = _read(meta, model.sample_rate, 1, duration)
        except Exception as err:  # noqa: BLE001
            logger.warning("skipping %s: %s", meta.path, err)
            skipped += 1
            continue
        caption = plain_caption(_info(meta))
        out = model.generate_with_chroma([caption], melody[None], model.sample_rate)
        text_only = model.generate([caption])
        rows.append({
            "chroma_cosine": float(chroma_cosine_similarity(out.cpu(), melody[None], model.sample_rate)),
            "chroma_cosine_text_only": float(chroma_cosine_similarity(text_only.cpu(), melody[None], model.sample_rate)),
        })
    return _mean(rows, skipped)


def _progress(items: list[AudioMeta], show: bool, desc: str) -> Any:
    if not show:
        return items
    from tqdm import tqdm

    return tqdm(items, unit="file", desc=desc)
