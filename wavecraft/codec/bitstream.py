"""The .wcc compressed-audio file format: header, segment table, packed codes, CRC32.

Layout (little-endian; docs/format.md is the full specification):

    magic "\\x89WCC" | u16 version | u16 flags | u32 sample_rate | u16 channels | u16 K
    | u32 cardinality | u32 source_sample_rate | u16 source_channels | u16 name_len
    | 32 bytes weights sha256 | name (utf-8) | u32 S | S x (u32 frames, u32 samples)
    | [flag SCALES] S x (u8 ndim, ndim x u32, float32 values) | u64 payload_len | payload | u32 crc32

The payload holds codes [K, F] (all segments concatenated along time, codebook-major), either
bit-packed at ceil(log2(cardinality)) bits per code or entropy-coded (flag ENTROPY, see
`entropy.py`). The CRC covers every byte before it.

This module is numpy only (no torch) so reading a file's header is cheap.
"""
from __future__ import annotations

import math
import os
import struct
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import BitstreamError
from . import entropy

MAGIC = b"\x89WCC"
VERSION = 1
FLAG_SCALES = 1
FLAG_ENTROPY = 2
_KNOWN_FLAGS = FLAG_SCALES | FLAG_ENTROPY
_FIXED = struct.Struct("<4sHHIHHIIHH32s")  # everything up to the codec name
CODINGS = ("auto", "packed", "entropy")
_PACK_CHUNK = 1 << 20  # codes per vectorised packing step (a multiple of 8 keeps bytes aligned)


@dataclass(eq=False)  # numpy fields: compare explicitly
class WccSegment:
    """One independently encoded piece of audio: its length, frames, and the codec's scale."""

    num_samples: int
    num_frames: int
    scale: np.ndarray | None = None


@dataclass(eq=False)  # numpy fields: compare explicitly
class WccFile:
    """Everything a .wcc file holds. `codes` is [K, F]: all segments concatenated along time."""

    codec_name: str
    weights_sha256: str
    sample_rate: int
    channels: int
    cardinality: int
    codes: np.ndarray
    segments: list[WccSegment]
    source_sample_rate: int = 0  # the input file's rate and channels (0: unknown), for information
    source_channels: int = 0
    # Set by to_bytes / from_bytes: how the payload was coded and its size (for bitrate reports).
    coding: str = field(default="packed", compare=False)
    payload_bytes: int = field(default=0, compare=False)

    @property
    def num_codebooks(self) -> int:
        return int(self.codes.shape[0])

    @property
    def num_frames(self) -> int:
        return int(self.codes.shape[1])

    @property
    def num_samples(self) -> int:
        return sum(seg.num_samples for seg in self.segments)

    @property
    def duration(self) -> float:
        return self.num_samples / self.sample_rate

    @property
    def bits_per_code(self) -> int:
        return bits_per_code(self.cardinality)

    def segment_codes(self):
        """Yield (codes [K, F_i], scale or None, num_samples) per segment, in order."""
        offset = 0
        for seg in self.segments:
            yield self.codes[:, offset : offset + seg.num_frames], seg.scale, seg.num_samples
            offset += seg.num_frames


def bits_per_code(cardinality: int) -> int:
    """ceil(log2(cardinality)), at least 1."""
    return max(1, int(cardinality - 1).bit_length())


def pack_codes(codes: np.ndarray, bits: int) -> bytes:
    """Bit-pack non-negative integers (flattened, C order), `bits` each, least significant first."""
    flat = np.ascontiguousarray(codes, dtype=np.uint64).reshape(-1)
    shifts = np.arange(bits, dtype=np.uint64)
    parts = []
    for start in range(0, flat.size, _PACK_CHUNK):
        chunk = flat[start : start + _PACK_CHUNK]
        bit_matrix = ((chunk[:, None] >> shifts) & np.uint64(1)).astype(np.uint8)
        parts.append(np.packbits(bit_matrix.reshape(-1), bitorder="little").tobytes())
    return b"".join(parts)


def unpack_codes(data: bytes | memoryview, count: int, bits: int) -> np.ndarray:
    """Inverse of `pack_codes`: `count` integers as int64."""
    raw = np.frombuffer(data, dtype=np.uint8)
    weights = (np.uint64(1) << np.arange(bits, dtype=np.uint64))
    out = np.empty(count, dtype=np.int64)
    chunk_bytes = _PACK_CHUNK * bits // 8
    for i, start in enumerate(range(0, count, _PACK_CHUNK)):
        n = min(_PACK_CHUNK, count - start)
        piece = raw[i * chunk_bytes : i * chunk_bytes + (n * bits + 7) // 8]
        bit_matrix = np.unpackbits(piece, count=n * bits, bitorder="little").reshape(n, bits)
        out[start : start + n] = bit_matrix.astype(np.uint64) @ weights
    return out


def packed_size(count: int, bits: int) -> int:
    return (count * bits + 7) // 8


def _check_content(wcc: WccFile) -> np.ndarray:
    """Validate a WccFile before writing; returns codes as int64 [K, F]."""
    codes = np.asarray(wcc.codes)
    if codes.ndim != 2 or codes.shape[0] < 1:
        raise BitstreamError(f"cannot write .wcc: codes must be [K, F] with K >= 1, got shape {codes.shape}")
    if not np.issubdtype(codes.dtype, np.integer):
        raise BitstreamError(f"cannot write .wcc: codes must be integers, got {codes.dtype}")
    if not 2 <= wcc.cardinality < 1 << 32:
        raise BitstreamError(f"cannot write .wcc: cardinality must be in [2, 2^32), got {wcc.cardinality}")
    if codes.size and (codes.min() < 0 or codes.max() >= wcc.cardinality):
        raise BitstreamError(
            f"cannot write .wcc: codes must lie in [0, {wcc.cardinality}), found {codes.min()}..{codes.max()}"
        )
    if sum(seg.num_frames for seg in wcc.segments) != codes.shape[1]:
        raise BitstreamError("cannot write .wcc: segment frame counts do not add up to the codes' length")
    if len(bytes.fromhex(wcc.weights_sha256)) != 32:
        raise BitstreamError("cannot write .wcc: weights_sha256 must be 64 hex characters")
    if not wcc.segments:
        raise BitstreamError("cannot write .wcc: no segments (empty audio)")
    with_scale = [seg.scale is not None for seg in wcc.segments]
    if any(with_scale) and not all(with_scale):
        raise BitstreamError("cannot write .wcc: either every segment has a scale or none has")
    return codes.astype(np.int64, copy=False)


def to_bytes(wcc: WccFile, coding: str = "auto") -> bytes:
    """Serialise. coding: 'packed', 'entropy', or 'auto' (whichever is smaller)."""
    if coding not in CODINGS:
        raise BitstreamError(f"unknown coding {coding!r}; choose one of {', '.join(CODINGS)}")
    codes = _check_content(wcc)
    payload = pack_codes(codes, wcc.bits_per_code)
    used = "packed"
    if coding != "packed" and wcc.cardinality <= entropy.MAX_CARDINALITY and codes.size:
        coded = entropy.encode(codes, wcc.cardinality)
        if coding == "entropy" or len(coded) < len(payload):
            payload, used = coded, "entropy"
    elif coding == "entropy":
        raise BitstreamError(
            f"entropy coding needs a cardinality of at most {entropy.MAX_CARDINALITY}, got {wcc.cardinality}"
        )
    wcc.coding, wcc.payload_bytes = used, len(payload)
    has_scales = wcc.segments[0].scale is not None
    flags = (FLAG_SCALES if has_scales else 0) | (FLAG_ENTROPY if used == "entropy" else 0)
    name = wcc.codec_name.encode("utf-8")
    if len(name) > 0xFFFF:
        raise BitstreamError("cannot write .wcc: codec name longer than 65535 bytes")
    try:
        parts = [
            _FIXED.pack(
                MAGIC, VERSION, flags, wcc.sample_rate, wcc.channels, wcc.num_codebooks, wcc.cardinality,
                wcc.source_sample_rate, wcc.source_channels, len(name), bytes.fromhex(wcc.weights_sha256),
            ),
            name,
            struct.pack("<I", len(wcc.segments)),
            np.array([(s.num_frames, s.num_samples) for s in wcc.segments], dtype="<u4").tobytes(),
        ]
    except (struct.error, OverflowError) as err:
        raise BitstreamError(f"cannot write .wcc: a header value is out of range ({err})") from None
    if has_scales:
        for seg in wcc.segments:
            scale = np.asarray(seg.scale, dtype="<f4")
            parts.append(struct.pack(f"<B{scale.ndim}I", scale.ndim, *scale.shape))
            parts.append(scale.tobytes())
    parts += [struct.pack("<Q", len(payload)), payload]
    body = b"".join(parts)
    return body + struct.pack("<I", zlib.crc32(body))


class _Reader:
    """Bounds-checked cursor: running past the end means the file is truncated."""

    def __init__(self, data: memoryview, source: str):
        self.data, self.pos, self.source = data, 0, source

    def take(self, n: int, what: str) -> memoryview:
        if self.pos + n > len(self.data):
            raise BitstreamError(
                f"{self.source} is truncated: it ends inside the {what} "
                f"(needs {self.pos + n} bytes, has {len(self.data)})"
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str, what: str) -> tuple:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))


def from_bytes(data: bytes | bytearray | memoryview, source: str = "<bytes>") -> WccFile:
    """Parse and verify a .wcc file's bytes; `source` names it in error messages."""
    buf = memoryview(data)
    if len(buf) < 6 or bytes(buf[:4]) != MAGIC:
        raise BitstreamError(f"{source} is not a .wcc file (wrong magic bytes; was it made by `wavecraft compress`?)")
    version = struct.unpack("<H", buf[4:6])[0]
    if version != VERSION:
        raise BitstreamError(
            f"{source} uses .wcc format version {version}, but this wavecraft reads version {VERSION}"
            + ("; upgrade wavecraft" if version > VERSION else "")
        )
    r = _Reader(buf, source)
    (_, _, flags, sample_rate, channels, k, card, src_sr, src_ch, name_len, digest) = _FIXED.unpack(
        r.take(_FIXED.size, "header")
    )
    if flags & ~_KNOWN_FLAGS:
        raise BitstreamError(f"{source} is corrupted: unknown header flags {flags:#x}")
    try:
        name = bytes(r.take(name_len, "codec name")).decode("utf-8")
    except UnicodeDecodeError:
        raise BitstreamError(f"{source} is corrupted: the codec name is not valid UTF-8") from None
    (num_segments,) = r.unpack("<I", "segment count")
    table = np.frombuffer(r.take(8 * num_segments, "segment table"), dtype="<u4").reshape(-1, 2)
    scales: list[np.ndarray | None] = [None] * num_segments
    if flags & FLAG_SCALES:
        for i in range(num_segments):
            (ndim,) = r.unpack("<B", "scale shape")
            shape = r.unpack(f"<{ndim}I", "scale shape")
            count = math.prod(shape)
            scales[i] = np.frombuffer(r.take(4 * count, "scales"), dtype="<f4").reshape(shape).copy()
    (payload_len,) = r.unpack("<Q", "payload length")
    payload = r.take(payload_len, "payload")
    body_end = r.pos
    (crc,) = r.unpack("<I", "checksum")
    if r.pos != len(buf):
        raise BitstreamError(f"{source} is corrupted: {len(buf) - r.pos} unexpected bytes after the checksum")
    if zlib.crc32(buf[:body_end]) != crc:
        raise BitstreamError(f"{source} is corrupted: checksum mismatch (the file was damaged after writing)")

    # The checksum matched, so what follows only fails for files written by a buggy or foreign tool.
    num_frames = int(table[:, 0].sum()) if num_segments else 0
    if k < 1 or card < 2 or sample_rate < 1 or channels < 1 or num_segments < 1:
        raise BitstreamError(f"{source} is corrupted: impossible header values (K={k}, cardinality={card})")
    if flags & FLAG_ENTROPY:
        try:
            codes = entropy.decode(payload, k, num_frames, card)
        except entropy.EntropyError as err:
            raise BitstreamError(f"{source} is corrupted: {err}") from None
        coding = "entropy"
    else:
        bits = bits_per_code(card)
        if payload_len != packed_size(k * num_frames, bits):
            raise BitstreamError(
                f"{source} is corrupted: payload has {payload_len} bytes, expected "
                f"{packed_size(k * num_frames, bits)} for {k} x {num_frames} codes of {bits} bits"
            )
        codes = unpack_codes(payload, k * num_frames, bits).reshape(k, num_frames)
        if codes.size and codes.max() >= card:
            raise BitstreamError(f"{source} is corrupted: a code is >= the cardinality {card}")
        coding = "packed"
    segments = [
        WccSegment(num_samples=int(s), num_frames=int(f), scale=scales[i]) for i, (f, s) in enumerate(table)
    ]
    return WccFile(
        name, bytes(digest).hex(), sample_rate, channels, card, codes, segments, src_sr, src_ch, coding, payload_len
    )


def write_wcc(path: str | Path, wcc: WccFile, coding: str = "auto", overwrite: bool = False) -> int:
    """Write atomically (temporary file + rename); returns the file size in bytes."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise BitstreamError(f"{path} already exists; refusing to overwrite it (use --force / overwrite=True)")
    data = to_bytes(wcc, coding)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(data)


def read_wcc(path: str | Path) -> WccFile:
    """Read and verify a .wcc file (BitstreamError if missing, foreign, truncated or corrupted)."""
    path = Path(path)
    if not path.is_file():
        raise BitstreamError(f".wcc file not found: {path}" if not path.exists() else f"{path} is not a file")
    return from_bytes(path.read_bytes(), str(path))
