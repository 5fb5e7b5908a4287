"""Token cache: encode a dataset with the codec once, then train the LM on codes.

LM training on audio re-runs the codec encoder on every batch; for many epochs it is cheaper to
encode every file once. A cache folder holds:

    meta.json            codec identity (name, weights hash), frame rate, codebooks, cardinality
    index.jsonl          one line per file: path, frames, shard, key, info (sidecar metadata)
    shard_00000.safetensors ...  codes as int16 [K, F] tensors, one per file

Shards are read lazily with safetensors slices, so a segment costs one small read, not a shard.
`TokenDataset` samples fixed-length code segments exactly like `SegmentDataset` samples audio
(weighted, deterministic per index, captions from the stored metadata).
"""
from __future__ import annotations

import json
import logging
import os
import random
import shutil
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from ..errors import WavecraftError
from .captions import build_caption
from .dataset import DataConfig, cumulative_weights, item_rng, pick_index, read_segment
from .manifest import AudioMeta, ManifestError, load_info, read_manifest

logger = logging.getLogger(__name__)

FORMAT = "wavecraft-tokens"
VERSION = 1
FILES_PER_SHARD = 256


class TokenCacheError(WavecraftError):
    """A token cache is missing, incomplete, or was made with another codec."""


def _encode_file(codec: Any, path: str, chunk_seconds: float, device: torch.device) -> torch.Tensor:
    """Codes [K, F] of a whole file, encoded in chunks of whole frames to bound memory."""
    from ..audio import audio_read

    wav, _ = audio_read(path, sample_rate=codec.sample_rate, channels=codec.channels)
    hop = int(round(codec.sample_rate / codec.frame_rate))
    chunk = max(hop, int(chunk_seconds * codec.sample_rate) // hop * hop)
    pieces = []
    with torch.no_grad():
        for start in range(0, wav.shape[-1], chunk):
            codes, _ = codec.encode(wav[None, :, start:start + chunk].to(device))
            pieces.append(codes[0].cpu())
    return torch.cat(pieces, dim=-1)


def build_token_cache(manifest: str | Path, codec: Any, out_dir: str | Path, force: bool = False,
                      chunk_seconds: float = 30.0, progress: bool = False) -> tuple[Path, int]:
    """Encode every file of `manifest` with `codec` into `out_dir`; returns (out_dir, skipped count).

    Unreadable files are skipped with a warning. Refuses an existing non-empty folder unless `force`.
    """
    from safetensors.torch import save_file

    metas = read_manifest(manifest)
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        if not force:
            raise TokenCacheError(f"{out} exists and is not empty; pass force (--force) to replace it")
        if not (out / "meta.json").is_file():
            # --force replaces an old cache, never an unrelated folder.
            raise TokenCacheError(f"{out} is not a token cache; refusing to replace it, choose another folder")
        shutil.rmtree(out)
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    if codec.cardinality > 32767:
        raise TokenCacheError(f"codec cardinality {codec.cardinality} does not fit the cache's int16 codes")
    device = next(codec.parameters()).device
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(metas), unit="file", desc="encoding")
    lines: list[dict[str, Any]] = []
    shard: dict[str, torch.Tensor] = {}
    skipped = 0

    def flush() -> None:
        # Called when a shard is full and at the end: the shard of the last entry written.
        if shard:
            save_file(shard, str(tmp / f"shard_{lines[-1]['shard']:05d}.safetensors"))
            shard.clear()

    codec.eval()
    for meta in metas:
        try:
            codes = _encode_file(codec, meta.path, chunk_seconds, device)
        except Exception as err:  # noqa: BLE001 - skip any file that fails to decode or encode
            logger.warning("skipping %s: %s", meta.path, err)
            skipped += 1
            if bar is not None:
                bar.update(1)
            continue
        try:
            info = load_info(meta) or {}
        except ManifestError as err:
            logger.warning("%s; caching it without metadata", err)
            info = {}
        shard_id = len(lines) // FILES_PER_SHARD
        key = str(len(lines))
        shard[key] = codes.to(torch.int16).contiguous()
        lines.append({"path": meta.path, "frames": int(codes.shape[-1]), "shard": shard_id, "key": key,
                      "weight": meta.weight, "info": info})
        if len(lines) % FILES_PER_SHARD == 0:
            flush()
        if bar is not None:
            bar.update(1)
    flush()
    if bar is not None:
        bar.close()
    if not lines:
        shutil.rmtree(tmp)
        raise TokenCacheError(f"no file of {manifest} could be encoded ({skipped} skipped)")
    meta_json = {
        "format": FORMAT, "version": VERSION, "codec": getattr(codec, "name", "codec"),
        "codec_hash": codec.weights_hash() if hasattr(codec, "weights_hash") else None,
        "sample_rate": int(codec.sample_rate), "frame_rate": float(codec.frame_rate),
        "n_q": int(codec.num_codebooks), "card": int(codec.cardinality), "files": len(lines), "skipped": skipped,
    }
    (tmp / "index.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    (tmp / "meta.json").write_text(json.dumps(meta_json, indent=2) + "\n")
    os.replace(tmp, out)
    return out, skipped


def read_cache_meta(cache_dir: str | Path) -> dict[str, Any]:
    path = Path(cache_dir) / "meta.json"
    if not path.is_file():
        raise TokenCacheError(f"{cache_dir} is not a token cache (no meta.json); build one with `wavecraft data tokens`")
    meta = json.loads(path.read_text())
    if meta.get("format") != FORMAT or meta.get("version", 0) > VERSION:
        raise TokenCacheError(f"{path} is not a token cache this wavecraft can read")
    return meta


class TokenDataset(Dataset):
    """Endless stream of `{codes [K, F] long, length (valid frames), caption, info, ...}` items.

    with_audio: also read the audio under each code segment from the cached file's path (`wav`
    [C, samples], at the cache's sample rate). Conditioners that look at the audio itself
    (melody chroma) need it; reading a few seconds of a file is far cheaper than re-encoding it.
    A file that can no longer be read is skipped (counted in `skipped`) and another one is drawn.
    """

    def __init__(self, cache_dir: str | Path, config: DataConfig, seed: int = 0, with_captions: bool = True,
                 with_audio: bool = False):
        self.dir = Path(cache_dir)
        self.meta = read_cache_meta(self.dir)
        self.config = config
        self.seed = seed
        self.with_captions = with_captions
        self.with_audio = with_audio
        if config.mix_p > 0:
            raise TokenCacheError("data.mix_p > 0 needs audio: codes cannot be mixed; train from audio instead")
        self.segment_frames = max(1, int(round(config.segment_duration * self.meta["frame_rate"])))
        entries = [json.loads(line) for line in (self.dir / "index.jsonl").read_text().splitlines() if line.strip()]
        min_frames = config.min_segment_ratio * self.segment_frames
        self.entries = [e for e in entries if e["frames"] >= min_frames]
        self.skipped_short = len(entries) - len(self.entries)
        if not self.entries:
            raise TokenCacheError(f"no file in {self.dir} is at least {min_frames:.0f} frames long")
        fake = [AudioMeta(e["path"], e["frames"] / self.meta["frame_rate"], 1, weight=e.get("weight"))
                for e in self.entries]
        self.cum_weights = cumulative_weights(fake, config)
        self._handles: dict[int, Any] = {}

    def __len__(self) -> int:
        return 2**62

    def __getstate__(self) -> dict[str, Any]:
        # Open shard handles cannot cross into spawned DataLoader workers; each reopens its own.
        return {**self.__dict__, "_handles": {}}

    def _slice(self, entry: dict[str, Any], start: int, length: int) -> torch.Tensor:
        from safetensors import safe_open

        shard = int(entry["shard"])
        if shard not in self._handles:  # opened lazily in each worker process
            path = self.dir / f"shard_{shard:05d}.safetensors"
            if not path.is_file():
                raise TokenCacheError(f"token cache {self.dir} is incomplete: {path.name} is missing")
            self._handles[shard] = safe_open(str(path), framework="pt")
        return self._handles[shard].get_slice(entry["key"])[:, start:start + length]

    def _audio(self, entry: dict[str, Any], start: int, frames: int) -> torch.Tensor:
        """The audio under codes [start, start + frames), zero-padded to the whole segment."""
        rate, sr = self.meta["frame_rate"], self.meta["sample_rate"]
        samples = int(round(self.segment_frames / rate * sr))
        wav = read_segment(entry["path"], start / rate, frames / rate, sr, self.config.channels)
        wav = wav[:, :samples]
        return torch.nn.functional.pad(wav, (0, samples - wav.shape[-1]))

    def __getitem__(self, index: int) -> dict[str, Any]:
        cfg = self.config
        rng = item_rng(self.seed, index)
        bad_paths: list[str] = []
        while True:
            entry = self.entries[pick_index(self.cum_weights, rng)]
            n = self.segment_frames
            start = rng.randint(0, max(0, entry["frames"] - n))
            caption_seed = rng.getrandbits(32)
            codes = self._slice(entry, start, n).long()
            length = codes.shape[-1]
            if not self.with_audio:
                break
            try:
                wav = self._audio(entry, start, length)
                break
            except Exception as err:  # noqa: BLE001 - any unreadable file is skipped, never fatal
                logger.warning("skipping %s: %s", entry["path"], err)
                bad_paths.append(entry["path"])
                if len(bad_paths) >= cfg.max_retries:
                    raise TokenCacheError(f"{len(bad_paths)} consecutive cached files could not be read "
                                          f"(last: {entry['path']}); are the audio files still there?") from None
        if length < n:
            codes = torch.nn.functional.pad(codes, (0, n - length))
        info = entry.get("info") or {}
        caption = build_caption(info, random.Random(caption_seed), cfg.captions) if self.with_captions else None
        item = {"codes": codes, "length": length, "caption": caption, "info": info, "path": entry["path"],
                "index": index, "skipped": len(bad_paths), "bad_paths": bad_paths, "bad_metadata": 0}
        if self.with_audio:
            item["wav"] = wav
        return item
