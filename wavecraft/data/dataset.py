"""Fixed-length audio segments sampled from a manifest, for codec and LM training.

Design: the dataset is an endless, indexable stream. Item `i` is a pure function of `(seed, i)`:
which file (weighted by duration and/or manifest weight), where the segment starts, the caption
augmentation and the optional AudioGen-style mix all come from a `random.Random` seeded by that
pair. So the batches do not depend on the number of DataLoader workers, and resuming a run only
needs the index of the next batch (see `StepBatchSampler`).

Bad data never kills a run: a file that fails to decode, turns out too short, or has unreadable
metadata is skipped (another file is drawn from the same RNG stream) and reported in the item's
`skipped` / `bad_paths` fields so the training loop can count it.
"""
from __future__ import annotations

import bisect
import dataclasses
import logging
import random
from pathlib import Path
from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..config import Config
from ..errors import WavecraftError
from .captions import CaptionConfig, build_caption, join_captions
from .manifest import AudioMeta, ManifestError, load_info, read_manifest

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class DataConfig(Config):
    """What to read and how to cut it (the `data` section of a training recipe)."""

    manifest: str = ""
    valid_manifest: str = ""  # empty: validate on fixed segments drawn from `manifest`
    segment_duration: float = 1.0
    sample_rate: int = 32000
    channels: int = 1
    batch_size: int = 8
    num_workers: int = 2
    sample_on_duration: bool = True  # longer files are drawn more often
    sample_on_weight: bool = True  # multiply by the manifest's `weight` when present
    min_segment_ratio: float = 0.5  # shorter files are zero-padded down to this fraction, skipped below
    max_retries: int = 20  # consecutive bad draws before giving up (the dataset is then mostly broken)
    captions: CaptionConfig = dataclasses.field(default_factory=CaptionConfig)
    mix_p: float = 0.0  # AudioGen: chance to mix a second clip in and join the captions
    mix_snr_low: float = -5.0
    mix_snr_high: float = 5.0
    mix_joiner: str = ", "
    valid_samples: int = 16

    def __post_init__(self) -> None:
        if self.segment_duration <= 0:
            raise ValueError(f"segment_duration must be > 0, got {self.segment_duration}")
        if self.batch_size <= 0 or self.num_workers < 0 or self.channels <= 0 or self.sample_rate <= 0:
            raise ValueError("batch_size, channels and sample_rate must be > 0 and num_workers >= 0")
        if not 0.0 <= self.mix_p <= 1.0 or not 0.0 < self.min_segment_ratio <= 1.0:
            raise ValueError("mix_p must be in [0, 1] and min_segment_ratio in (0, 1]")

    @property
    def segment_samples(self) -> int:
        return int(round(self.segment_duration * self.sample_rate))


def read_segment(path: str, offset: float, duration: float, sample_rate: int, channels: int) -> torch.Tensor:
    """Decode `duration` seconds from `offset`, resampled and channel-fixed: [channels, T] float32."""
    from ..audio import audio_read

    out = audio_read(path, seek_time=offset, duration=duration, sample_rate=sample_rate, channels=channels)
    wav = out[0] if isinstance(out, tuple) else out
    return wav.float()


def cumulative_weights(metas: list[AudioMeta], config: DataConfig) -> list[float]:
    """Running sum of sampling weights: duration (if sample_on_duration) x manifest weight (if set)."""
    total, out = 0.0, []
    for m in metas:
        w = m.duration if config.sample_on_duration else 1.0
        if config.sample_on_weight and m.weight is not None:
            w *= m.weight
        total += w
        out.append(total)
    if total <= 0:
        raise ManifestError("all manifest weights are zero: nothing can be sampled")
    return out


def pick_index(cum_weights: list[float], rng: random.Random) -> int:
    x = rng.random() * cum_weights[-1]
    return min(bisect.bisect_right(cum_weights, x), len(cum_weights) - 1)


def item_rng(seed: int, index: int) -> random.Random:
    # Integer seeding is stable across processes and Python runs (no hash randomisation).
    return random.Random(seed * 1_000_003 + index)


class SegmentDataset(Dataset):
    """Endless stream of items `{wav [C, T], length (valid samples), caption, info (sidecar dict), path,
    index, skipped, bad_paths, bad_metadata}`."""

    def __init__(self, metas: list[AudioMeta], config: DataConfig, seed: int = 0, with_captions: bool = True):
        self.config = config
        self.seed = seed
        self.with_captions = with_captions
        self.skipped_short = 0
        min_duration = config.segment_duration * config.min_segment_ratio
        kept = [m for m in metas if m.duration >= min_duration]
        self.skipped_short = len(metas) - len(kept)
        if self.skipped_short:
            logger.warning("skipping %d file(s) shorter than %.2fs", self.skipped_short, min_duration)
        if not kept:
            raise ManifestError(
                f"no file in the manifest lasts at least {min_duration:.2f}s "
                f"(segment_duration {config.segment_duration}s x min_segment_ratio {config.min_segment_ratio})"
            )
        self.metas = kept
        self.cum_weights = cumulative_weights(kept, config)
        self._bad: set[str] = set()  # per-process memory of files that failed, to avoid re-decoding

    @classmethod
    def from_manifest(cls, path: str | Path, config: DataConfig, seed: int = 0, **kwargs: Any) -> "SegmentDataset":
        return cls(read_manifest(path), config, seed=seed, **kwargs)

    def __len__(self) -> int:
        # Effectively endless; samplers decide how many items are drawn.
        return 2**62

    def _pick(self, rng: random.Random) -> AudioMeta:
        return self.metas[pick_index(self.cum_weights, rng)]

    def _draw(self, rng: random.Random, report: dict[str, Any]) -> tuple[torch.Tensor, int, str | None, str, dict]:
        """One good (wav, length, caption, path, info); bad draws are recorded in `report`."""
        cfg = self.config
        n = cfg.segment_samples
        for _ in range(cfg.max_retries):
            meta = self._pick(rng)
            offset = rng.uniform(0.0, max(0.0, meta.duration - cfg.segment_duration))
            caption_seed = rng.getrandbits(32)  # drawn even when unused so RNG use is constant
            if meta.path in self._bad:
                report["skipped"] += 1
                report["bad_paths"].append(meta.path)
                continue
            try:
                wav = read_segment(meta.path, offset, cfg.segment_duration, cfg.sample_rate, cfg.channels)
            except Exception as err:  # noqa: BLE001 - any decoding failure skips the file
                logger.warning("skipping unreadable %s: %s", meta.path, err)
                self._bad.add(meta.path)
                report["skipped"] += 1
                report["bad_paths"].append(meta.path)
                continue
            length = min(wav.shape[-1], n)
            if length < cfg.min_segment_ratio * n or wav.shape[0] != cfg.channels:
                # The manifest promised more audio than the file holds (truncated or wrong duration).
                self._bad.add(meta.path)
                report["skipped"] += 1
                report["bad_paths"].append(meta.path)
                continue
            wav = wav[:, :n]
            if length < n:
                wav = torch.nn.functional.pad(wav, (0, n - length))
            caption, info = None, None
            if self.with_captions:
                try:
                    info = load_info(meta)
                except ManifestError as err:
                    logger.warning("%s; training on this clip without a caption", err)
                    report["bad_metadata"] += 1
                    info = None
                caption = build_caption(info, random.Random(caption_seed), cfg.captions)
            return wav, length, caption, meta.path, info or {}
        raise WavecraftError(
            f"{cfg.max_retries} consecutive unusable files while sampling the dataset; "
            f"check the manifest (e.g. {report['bad_paths'][-1] if report['bad_paths'] else '?'})"
        )

    def __getitem__(self, index: int) -> dict[str, Any]:
        cfg = self.config
        rng = item_rng(self.seed, index)
        report: dict[str, Any] = {"skipped": 0, "bad_paths": [], "bad_metadata": 0}
        wav, length, caption, path, info = self._draw(rng, report)
        if cfg.mix_p > 0 and rng.random() < cfg.mix_p:
            other, other_len, other_caption, _, _ = self._draw(rng, report)
            wav = mix_at_snr(wav, other, rng.uniform(cfg.mix_snr_low, cfg.mix_snr_high))
            length = max(length, other_len)
            caption = join_captions(caption, other_caption, cfg.mix_joiner)
        return {"wav": wav, "length": length, "caption": caption, "info": info, "path": path, "index": index,
                **report}


def mix_at_snr(wav: torch.Tensor, other: torch.Tensor, snr_db: float) -> torch.Tensor:
    """Add `other` to `wav` so that wav's energy is `snr_db` above it; rescaled if it would clip."""
    eps = 1e-8
    p_wav = wav.pow(2).mean()
    p_other = other.pow(2).mean()
    gain = torch.sqrt(p_wav / (p_other * 10 ** (snr_db / 10) + eps)) if p_wav > eps else torch.tensor(1.0)
    mixed = wav + gain * other
    peak = mixed.abs().max()
    return mixed / peak * 0.99 if peak > 1 else mixed


def collate_items(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack a list of items into a batch; per-item reports are summed."""
    batch: dict[str, Any] = {"wav": torch.stack([it["wav"] for it in items])} if "wav" in items[0] else {}
    if "codes" in items[0]:
        batch["codes"] = torch.stack([it["codes"] for it in items])
    batch["length"] = torch.tensor([it["length"] for it in items], dtype=torch.long)
    batch["caption"] = [it["caption"] for it in items]
    batch["info"] = [it.get("info") or {} for it in items]
    batch["path"] = [it["path"] for it in items]
    batch["index"] = torch.tensor([it["index"] for it in items], dtype=torch.long)
    batch["skipped"] = sum(it["skipped"] for it in items)
    batch["bad_metadata"] = sum(it["bad_metadata"] for it in items)
    batch["bad_paths"] = [p for it in items for p in it["bad_paths"]]
    return batch


class StepBatchSampler(Sampler[list[int]]):
    """Yields the item indices of batches `start, start+1, ...` for one rank of a data-parallel run.

    Global batch `b` is split across ranks, so every rank sees different items and the union over
    ranks does not depend on the world size layout beyond `batch_size * world_size`.
    """

    def __init__(self, batch_size: int, start_batch: int = 0, num_batches: int | None = None,
                 rank: int = 0, world_size: int = 1):
        self.batch_size = batch_size
        self.start_batch = start_batch
        self.num_batches = num_batches
        self.rank = rank
        self.world_size = world_size

    def __iter__(self) -> Iterator[list[int]]:
        b = self.start_batch
        while self.num_batches is None or b < self.start_batch + self.num_batches:
            first = (b * self.world_size + self.rank) * self.batch_size
            yield list(range(first, first + self.batch_size))
            b += 1

    def __len__(self) -> int:
        if self.num_batches is None:
            raise TypeError("an endless sampler has no length")
        return self.num_batches


def _worker_init(_: int) -> None:
    # Decoding and resampling are single-threaded per item; extra intra-op threads only fight the
    # training process for the same cores.
    torch.set_num_threads(1)


def make_loader(dataset: Dataset, batch_size: int, num_workers: int = 0, start_batch: int = 0,
                num_batches: int | None = None, rank: int = 0, world_size: int = 1,
                pin_memory: bool = False) -> DataLoader:
    """A DataLoader over `dataset` that starts at batch `start_batch` (for exact resume)."""
    sampler = StepBatchSampler(batch_size, start_batch, num_batches, rank, world_size)
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_items,
        worker_init_fn=_worker_init if num_workers else None,
        pin_memory=pin_memory,
        prefetch_factor=4 if num_workers else None,
        persistent_workers=False,
        # A private generator: creating the iterator must not advance the global torch RNG, or a
        # resumed run would draw different random numbers than an uninterrupted one.
        generator=torch.Generator().manual_seed(0),
    )
