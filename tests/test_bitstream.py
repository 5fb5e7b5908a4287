"""The .wcc format: bit-exact round trips, entropy coding, and refusal of damaged files."""
from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from wavecraft.codec import bitstream, entropy
from wavecraft.codec.bitstream import (
    WccFile,
    WccSegment,
    bits_per_code,
    from_bytes,
    pack_codes,
    read_wcc,
    to_bytes,
    unpack_codes,
    write_wcc,
)
from wavecraft.errors import BitstreamError

SHA = "0123456789abcdef" * 4


def make_file(card=2048, k=4, frames=(50, 13), scales=False, seed=0, codes=None) -> WccFile:
    rng = np.random.default_rng(seed)
    if codes is None:
        codes = rng.integers(0, card, (k, sum(frames)))
    segments = [
        WccSegment(num_samples=f * 640 - i, num_frames=f,
                   scale=rng.random((1, 2), dtype=np.float32) + 0.5 if scales else None)
        for i, f in enumerate(frames)
    ]
    return WccFile("facebook/encodec_32khz", SHA, 32000, 1, card, codes, segments, 44100, 2)


def assert_same(a: WccFile, b: WccFile) -> None:
    assert (a.codec_name, a.weights_sha256, a.sample_rate, a.channels, a.cardinality) == (
        b.codec_name, b.weights_sha256, b.sample_rate, b.channels, b.cardinality)
    assert (a.source_sample_rate, a.source_channels) == (b.source_sample_rate, b.source_channels)
    assert b.codes.dtype == np.int64 and np.array_equal(a.codes, b.codes)
    assert len(a.segments) == len(b.segments)
    for x, y in zip(a.segments, b.segments):
        assert (x.num_samples, x.num_frames) == (y.num_samples, y.num_frames)
        assert (x.scale is None) == (y.scale is None)
        if x.scale is not None:
            assert y.scale.dtype == np.float32 and np.array_equal(x.scale, y.scale)


@pytest.mark.parametrize("bits", [1, 2, 3, 7, 8, 10, 11, 13, 16, 20, 31])
def test_pack_unpack_exact(bits):
    rng = np.random.default_rng(bits)
    values = rng.integers(0, 1 << bits, 1001)
    values[:2] = [0, (1 << bits) - 1]
    data = pack_codes(values, bits)
    assert len(data) == (1001 * bits + 7) // 8
    assert np.array_equal(unpack_codes(data, 1001, bits), values)


def test_pack_layout_is_lsb_first_and_chunking_is_invisible(monkeypatch):
    assert pack_codes(np.array([1, 2, 3]), 2) == bytes([0b00111001])
    assert pack_codes(np.array([0x7FF, 0]), 11) == bytes([0xFF, 0x07, 0x00])
    values = np.random.default_rng(0).integers(0, 2048, 1000)
    whole = pack_codes(values, 11)
    monkeypatch.setattr(bitstream, "_PACK_CHUNK", 64)
    assert pack_codes(values, 11) == whole
    assert np.array_equal(unpack_codes(whole, 1000, 11), values)


def test_bits_per_code():
    assert [bits_per_code(c) for c in (2, 3, 4, 5, 1000, 1024, 1025, 2048)] == [1, 2, 2, 3, 10, 10, 11, 11]


@pytest.mark.parametrize("card", [2, 3, 5, 1000, 1024, 2048, 4097, 1 << 20])
@pytest.mark.parametrize("scales", [False, True])
def test_round_trip_is_bit_exact(card, scales):
    for coding in ("packed", "entropy", "auto"):
        if coding == "entropy" and card > entropy.MAX_CARDINALITY:
            continue
        wcc = make_file(card=card, k=3, frames=(40, 7, 1), scales=scales, seed=card)
        data = to_bytes(wcc, coding)
        back = from_bytes(data)
        assert_same(wcc, back)
        assert back.coding == wcc.coding and back.payload_bytes == wcc.payload_bytes
        if coding != "auto":
            assert wcc.coding == coding
        assert back.num_samples == 40 * 640 + 7 * 640 - 1 + 640 - 2 and back.num_frames == 48


def test_packed_file_size_is_header_plus_packed_payload():
    wcc = make_file(card=2048, k=4, frames=(100,))
    data = to_bytes(wcc, "packed")
    header = 60 + len("facebook/encodec_32khz") + 4 + 8 + 8
    assert len(data) == header + (4 * 100 * 11 + 7) // 8 + 4
    assert wcc.payload_bytes == (4 * 100 * 11 + 7) // 8


def test_header_layout_is_stable():
    # A golden prefix: changing the layout must come with a new format version.
    data = to_bytes(make_file(card=2048, k=4, frames=(3,)), "packed")
    assert data[:4] == b"\x89WCC"
    fields = struct.unpack("<HHIHHIIHH", data[4:28])
    assert fields == (1, 0, 32000, 1, 4, 2048, 44100, 2, len("facebook/encodec_32khz"))
    assert data[28:60] == bytes.fromhex(SHA)
    assert data[60:82] == b"facebook/encodec_32khz"
    assert struct.unpack("<IIIQ", data[82:102]) == (1, 3, 3 * 640, (4 * 3 * 11 + 7) // 8)
    assert struct.unpack("<I", data[-4:])[0] == zlib.crc32(data[:-4])


def test_entropy_coding_saves_bits_on_skewed_codes_and_auto_picks_the_smaller():
    rng = np.random.default_rng(1)
    p = 1.0 / np.arange(1, 2049) ** 1.1
    p /= p.sum()
    frames = 5000  # several lanes per codebook (entropy.num_groups > 1)
    assert entropy.num_groups(frames) > 1
    skewed = make_file(codes=rng.choice(2048, size=(4, frames), p=p), frames=(frames,))
    packed = len(to_bytes(skewed, "packed"))
    coded = to_bytes(skewed, "auto")
    assert skewed.coding == "entropy" and len(coded) < 0.85 * packed
    ideal_bytes = 4 * frames * -(p * np.log2(p)).sum() / 8
    # Within 10 % of the source entropy (the rest is the cost of learning 2048 frequencies).
    assert len(coded) < 1.10 * ideal_bytes
    assert_same(skewed, from_bytes(coded))
    uniform = make_file(codes=rng.integers(0, 2048, (4, frames)), frames=(frames,))
    assert len(to_bytes(uniform, "auto")) == len(to_bytes(uniform, "packed")) and uniform.coding == "packed"


@pytest.mark.parametrize("k,frames,card", [(1, 1, 2), (1, 2, 3), (2, 1025, 7), (5, 33000, 64)])
def test_entropy_coder_edge_shapes(k, frames, card):
    codes = np.random.default_rng(frames).integers(0, card, (k, frames))
    codes[:, -1] = card - 1
    data = entropy.encode(codes, card)
    assert np.array_equal(entropy.decode(data, k, frames, card), codes)


def test_constant_codes_compress_to_almost_nothing():
    wcc = make_file(codes=np.full((4, 3000), 17), frames=(3000,))
    assert len(to_bytes(wcc, "entropy")) < 0.05 * len(to_bytes(wcc, "packed"))


# --- refusing bad input ---------------------------------------------------------------------------

def test_foreign_and_empty_files():
    with pytest.raises(BitstreamError, match=r"song\.wav is not a \.wcc file \(wrong magic bytes"):
        from_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt ", "song.wav")
    with pytest.raises(BitstreamError, match="is not a .wcc file"):
        from_bytes(b"", "empty.wcc")


def test_newer_version_is_refused():
    data = bytearray(to_bytes(make_file()))
    data[4:6] = struct.pack("<H", 2)
    with pytest.raises(BitstreamError, match=r"x\.wcc uses \.wcc format version 2, but this wavecraft reads version 1; upgrade"):
        from_bytes(bytes(data), "x.wcc")


def test_every_truncation_is_reported_as_truncated():
    data = to_bytes(make_file(k=2, frames=(5, 3), scales=True), "packed")
    for cut in range(6, len(data)):
        with pytest.raises(BitstreamError, match=r"x\.wcc is truncated: it ends inside the"):
            from_bytes(data[:cut], "x.wcc")


@pytest.mark.parametrize("coding", ["packed", "entropy"])
def test_every_single_bit_flip_is_detected(coding):
    data = to_bytes(make_file(card=1000, k=2, frames=(6, 2), scales=True), coding)
    for pos in range(len(data)):
        for bit in (0, 5):
            damaged = bytearray(data)
            damaged[pos] ^= 1 << bit
            with pytest.raises(BitstreamError, match=r"x\.wcc"):
                from_bytes(bytes(damaged), "x.wcc")


def test_payload_corruption_message_and_trailing_bytes():
    data = bytearray(to_bytes(make_file(), "packed"))
    data[-10] ^= 0xFF
    with pytest.raises(BitstreamError, match=r"x\.wcc is corrupted: checksum mismatch"):
        from_bytes(bytes(data), "x.wcc")
    with pytest.raises(BitstreamError, match=r"x\.wcc is corrupted: 3 unexpected bytes after the checksum"):
        from_bytes(to_bytes(make_file()) + b"abc", "x.wcc")


def test_entropy_payload_with_valid_checksum_but_bad_content_is_refused():
    # A foreign writer could produce a well-checksummed but inconsistent payload.
    wcc = make_file(card=64, k=2, frames=(20,))
    data = bytearray(to_bytes(wcc, "entropy"))
    body = data[:-4]
    body[-1] ^= 0x01  # last payload byte
    body = bytes(body)
    with pytest.raises(BitstreamError, match="is corrupted: entropy-coded payload"):
        from_bytes(body + struct.pack("<I", zlib.crc32(body)), "x.wcc")


def test_invalid_content_is_refused_on_write():
    with pytest.raises(BitstreamError, match=r"codes must lie in \[0, 2048\), found 0\.\.2048"):
        to_bytes(make_file(codes=np.array([[0, 2048, 5]]), frames=(3,)))
    with pytest.raises(BitstreamError, match="segment frame counts do not add up"):
        to_bytes(make_file(codes=np.zeros((1, 4), dtype=np.int64), frames=(3,)))
    with pytest.raises(BitstreamError, match="unknown coding 'zip'"):
        to_bytes(make_file(), "zip")
    with pytest.raises(BitstreamError, match="entropy coding needs a cardinality of at most 65536"):
        to_bytes(make_file(card=1 << 20), "entropy")


def test_write_and_read_files(tmp_path):
    wcc = make_file(scales=True)
    path = tmp_path / "out" / "a.wcc"
    size = write_wcc(path, wcc)
    assert path.stat().st_size == size and list(path.parent.iterdir()) == [path]  # no temp file left
    assert_same(wcc, read_wcc(path))
    with pytest.raises(BitstreamError, match="already exists; refusing to overwrite"):
        write_wcc(path, wcc)
    write_wcc(path, make_file(seed=3), overwrite=True)
    assert_same(make_file(seed=3), read_wcc(path))
    with pytest.raises(BitstreamError, match=r"\.wcc file not found: .*missing\.wcc"):
        read_wcc(tmp_path / "missing.wcc")
    with pytest.raises(BitstreamError, match="is not a file"):
        read_wcc(tmp_path)
