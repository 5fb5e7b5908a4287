"""Adaptive entropy coding of codec tokens: interleaved rANS with a per-codebook adaptive model.

Why this shape: codec tokens are far from uniform (some codewords are used much more than others),
so a model of each codebook's symbol frequencies saves bits over plain bit-packing. A static table
would cost kilobytes to transmit (2048 entries per codebook), more than a short clip's payload, so
the model is adaptive: encoder and decoder start from the same flat counts and update them with
every symbol coded, and nothing but the coded words is stored.

A sequential adaptive coder in Python would loop once per symbol. Instead each codebook's frames are
split into G contiguous groups ("lanes") coded in lock-step: at step t every lane codes one symbol
with the model as it stands, then the model absorbs all of them. Each numpy operation then covers
K * G symbols, and the decoder, which sees the same symbols in the same order, rebuilds the same
model. rANS (range asymmetric numeral systems) is used because its state update is plain integer
arithmetic that vectorises over lanes; it codes in reverse, so the encoder first walks forward to
record each symbol's model frequency, then encodes backwards.

Parameters (fixed by the .wcc format version; see docs/format.md):
  probabilities are quantised to PROB_BITS = 20 bits; rANS state in [2^32, 2^48); 16-bit words;
  counts start at 1 and grow by 8 per coded symbol, halved when a codebook's total passes 2^24.
"""
from __future__ import annotations

import numpy as np

PROB_BITS = 20
PROB_TOTAL = 1 << PROB_BITS
STATE_LOW = 1 << 32
WORD_BITS = 16
COUNT_INIT = 1
COUNT_INCREMENT = 8
COUNT_LIMIT = 1 << 24
MAX_GROUPS = 32
FRAMES_PER_GROUP = 1024
MAX_CARDINALITY = 1 << 16  # leaves every symbol at least 1/16 of the probability scale

_U64 = np.uint64


class EntropyError(ValueError):
    """The entropy-coded payload is malformed (the caller turns this into a BitstreamError)."""


def num_groups(num_frames: int) -> int:
    """Lanes per codebook: enough to vectorise long files, few for short ones (10 bytes each)."""
    return int(min(MAX_GROUPS, max(1, num_frames // FRAMES_PER_GROUP)))


class _Model:
    """Adaptive frequency counts per codebook, quantised to PROB_TOTAL each step."""

    def __init__(self, num_codebooks: int, cardinality: int):
        self.card = cardinality
        self.counts = np.full((num_codebooks, cardinality), COUNT_INIT, dtype=np.int64)
        self.rows = np.arange(num_codebooks)

    def tables(self) -> tuple[np.ndarray, np.ndarray]:
        """(freq, start) [K, card]: every symbol gets >= 1, the rounding remainder goes to the mode."""
        total = self.counts.sum(axis=1, keepdims=True)
        freq = 1 + (self.counts * (PROB_TOTAL - self.card)) // total
        freq[self.rows, self.counts.argmax(axis=1)] += PROB_TOTAL - freq.sum(axis=1)
        start = np.cumsum(freq, axis=1) - freq
        return freq, start

    def update(self, lane_rows: np.ndarray, symbols: np.ndarray) -> None:
        np.add.at(self.counts, (lane_rows, symbols), COUNT_INCREMENT)
        heavy = self.counts.sum(axis=1) > COUNT_LIMIT
        if heavy.any():
            self.counts[heavy] = (self.counts[heavy] + 1) >> 1


def _layout(num_codebooks: int, num_frames: int) -> tuple[int, int, np.ndarray, np.ndarray]:
    """Groups G, steps S, each lane's codebook row [K*G], and the frame each lane codes per step."""
    groups = num_groups(num_frames)
    steps = -(-num_frames // groups)
    lane_rows = np.repeat(np.arange(num_codebooks), groups)
    lane_first_frame = np.tile(np.arange(groups) * steps, num_codebooks)
    return groups, steps, lane_rows, lane_first_frame


def encode(codes: np.ndarray, cardinality: int) -> bytes:
    """Entropy-code codes [K, F] (values in [0, cardinality)) into bytes."""
    if not 2 <= cardinality <= MAX_CARDINALITY:
        raise ValueError(f"entropy coding supports cardinalities 2..{MAX_CARDINALITY}, got {cardinality}")
    num_codebooks, num_frames = codes.shape
    groups, steps, lane_rows, first = _layout(num_codebooks, num_frames)
    lanes = lane_rows.size
    model = _Model(num_codebooks, cardinality)
    flat = codes.astype(np.int64, copy=False)

    # Forward pass: the model frequency and cumulative start of every symbol as it will be coded.
    freqs = np.zeros((steps, lanes), dtype=np.uint64)
    starts = np.zeros((steps, lanes), dtype=np.uint64)
    valid = np.zeros((steps, lanes), dtype=bool)
    for t in range(steps):
        frame = first + t
        ok = frame < num_frames
        rows, symbols = lane_rows[ok], flat[lane_rows[ok], frame[ok]]
        freq, start = model.tables()
        freqs[t, ok] = freq[rows, symbols]
        starts[t, ok] = start[rows, symbols]
        valid[t] = ok
        model.update(rows, symbols)

    # Backward pass: rANS encode, collecting emitted words with their lane.
    state = np.full(lanes, STATE_LOW, dtype=np.uint64)
    emitted_lane: list[np.ndarray] = []
    emitted_word: list[np.ndarray] = []
    shift = _U64(PROB_BITS)
    for t in range(steps - 1, -1, -1):
        ok = valid[t]
        f = freqs[t]
        limit = f << _U64(32 - PROB_BITS + WORD_BITS)  # renormalise until state < limit
        while True:
            spill = ok & (state >= limit)
            if not spill.any():
                break
            idx = np.nonzero(spill)[0]
            emitted_lane.append(idx)
            emitted_word.append((state[idx] & _U64(0xFFFF)).astype(np.uint16))
            state[idx] >>= _U64(WORD_BITS)
        idx = np.nonzero(ok)[0]
        f_ok = f[idx]
        s = state[idx]
        state[idx] = ((s // f_ok) << shift) + (s % f_ok) + starts[t, idx]

    # The decoder reads each lane's words in reverse emission order (rANS is a stack).
    if emitted_lane:
        lane_of = np.concatenate(emitted_lane)
        words = np.concatenate(emitted_word)
    else:
        lane_of = np.zeros(0, dtype=np.int64)
        words = np.zeros(0, dtype=np.uint16)
    order = np.lexsort((-np.arange(lane_of.size), lane_of))
    counts = np.bincount(lane_of, minlength=lanes).astype("<u4")
    final = state.astype("<u8").view(np.uint8).reshape(lanes, 8)[:, :6]
    return b"".join(
        [np.uint16(groups).astype("<u2").tobytes(), counts.tobytes(), final.tobytes(), words[order].astype("<u2").tobytes()]
    )


def decode(data: bytes | memoryview, num_codebooks: int, num_frames: int, cardinality: int) -> np.ndarray:
    """Inverse of `encode`: codes [K, F] int64. Raises EntropyError on any inconsistency."""
    if not 2 <= cardinality <= MAX_CARDINALITY:
        raise EntropyError(f"entropy-coded payload with unsupported cardinality {cardinality}")
    buf = memoryview(data)
    groups_expected, steps, lane_rows, first = _layout(num_codebooks, num_frames)
    lanes = lane_rows.size
    head = 2 + 4 * lanes + 6 * lanes
    if len(buf) < head:
        raise EntropyError("entropy-coded payload is shorter than its lane table")
    groups = int(np.frombuffer(buf[:2], dtype="<u2")[0])
    if groups != groups_expected:
        raise EntropyError(f"entropy-coded payload declares {groups} groups, expected {groups_expected}")
    counts = np.frombuffer(buf[2 : 2 + 4 * lanes], dtype="<u4").astype(np.int64)
    raw_state = np.zeros((lanes, 8), dtype=np.uint8)
    raw_state[:, :6] = np.frombuffer(buf[2 + 4 * lanes : head], dtype=np.uint8).reshape(lanes, 6)
    state = raw_state.view("<u8").reshape(lanes).astype(np.uint64)
    if (len(buf) - head) != 2 * int(counts.sum()):
        raise EntropyError("entropy-coded payload length does not match its word counts")
    words = np.frombuffer(buf[head:], dtype="<u2").astype(np.uint64)
    ptr = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    end = ptr + counts

    model = _Model(num_codebooks, cardinality)
    codes = np.zeros((num_codebooks, num_frames), dtype=np.int64)
    row_offset = np.arange(num_codebooks, dtype=np.int64) * (PROB_TOTAL + 1)
    mask_low = _U64(PROB_TOTAL - 1)
    shift = _U64(PROB_BITS)
    for t in range(steps):
        frame = first + t
        ok = frame < num_frames
        idx = np.nonzero(ok)[0]
        rows = lane_rows[idx]
        freq, start = model.tables()
        s = state[idx]
        slot = (s & mask_low).astype(np.int64)
        # Find each lane's symbol: rows are offset so one searchsorted covers all codebooks.
        flat_starts = (start + row_offset[:, None]).ravel()
        symbols = np.searchsorted(flat_starts, slot + row_offset[rows], side="right") - 1 - rows * cardinality
        s = freq[rows, symbols].astype(np.uint64) * (s >> shift) + slot.astype(np.uint64) - start[rows, symbols].astype(np.uint64)
        while True:
            need = s < _U64(STATE_LOW)
            if not need.any():
                break
            lanes_need = idx[need]
            if (ptr[lanes_need] >= end[lanes_need]).any():
                raise EntropyError("entropy-coded payload ran out of data (corrupted)")
            s[need] = (s[need] << _U64(WORD_BITS)) | words[ptr[lanes_need]]
            ptr[lanes_need] += 1
        state[idx] = s
        codes[rows, frame[idx]] = symbols
        model.update(rows, symbols)
    if (ptr != end).any() or (state != _U64(STATE_LOW)).any():
        raise EntropyError("entropy-coded payload did not decode to its initial state (corrupted)")
    return codes
