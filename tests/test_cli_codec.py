"""`wavecraft compress` / `decompress` end to end with tiny random codecs saved in wavecraft format."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from wavecraft.audio import audio_info, audio_read, audio_write
from wavecraft.cli import main
from wavecraft.codec import Codec, CodecConfig
from wavecraft.codec.bitstream import read_wcc
from wavecraft.compress import compress_file, decompress_file
from wavecraft.models.loaders.native import save_codec

SR = 8000  # the tiny preset's rate; hop 8 -> 1000 frames/s


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # The tiny codecs' ops are far too small for intra-op threads; on a busy 2-core machine the
    # thread pool's spinning costs 10-20x more CPU than the work itself.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_codec(seed: int, **changes) -> Codec:
    torch.manual_seed(seed)
    return Codec(CodecConfig.preset("tiny", **changes), name=f"tiny{seed}").eval()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_codec")
    mono = tiny_codec(0)
    save_codec(mono, root / "mono")
    save_codec(tiny_codec(1), root / "other")
    stereo = tiny_codec(2, channels=2, renormalize=True, chunk_length_s=0.5, overlap=0.01, causal=False,
                        norm="time_group_norm")
    save_codec(stereo, root / "stereo")
    t = torch.arange(int(2.5 * SR)) / SR
    wav = 0.4 * torch.sin(2 * torch.pi * 220 * t) * torch.sin(2 * torch.pi * 0.7 * t) + 0.05 * torch.randn(t.shape)
    audio_write(root / "in", wav[None], SR, strategy="none")
    return {"root": root, "input": root / "in.wav", "mono": mono, "stereo": stereo}


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def expected_decode(codec: Codec, wav: torch.Tensor, seg_len: int) -> torch.Tensor:
    """What compress -> decompress must give: each segment encoded and decoded on its own."""
    pieces = []
    with torch.no_grad():
        for start in range(0, wav.shape[-1], seg_len):
            piece = wav[None, :, start : start + seg_len]
            codes, scale = codec.encode(piece)
            pieces.append(codec.decode(codes, scale, length=piece.shape[-1])[0])
    return torch.cat(pieces, -1).clamp(-1, 1)


def test_round_trip_through_the_cli(env, capsys, tmp_path):
    wcc, out = tmp_path / "a.wcc", tmp_path / "a.wav"
    code, stdout, _ = run(capsys, "compress", env["input"], wcc, "--model", env["root"] / "mono", "--segment", "1")
    assert code == 0
    assert "4 codebooks x 64" in stdout and "kbps" in stdout and "smaller than 16-bit PCM at 8 kHz mono" in stdout
    f = read_wcc(wcc)
    assert f.codec_name == str((env["root"] / "mono").resolve())
    assert f.weights_sha256 == env["mono"].weights_hash()
    assert (f.sample_rate, f.channels, f.cardinality, f.num_codebooks) == (SR, 1, 64, 4)
    assert (f.source_sample_rate, f.source_channels, f.num_samples) == (SR, 1, 20000)
    assert [s.num_samples for s in f.segments] == [8000, 8000, 4000]
    wav, _ = audio_read(env["input"])
    with torch.no_grad():
        first, _ = env["mono"].encode(wav[None, :, :8000])
    assert np.array_equal(f.codes[:, :1000], first[0].numpy())  # the file holds the codec's codes

    code, stdout, _ = run(capsys, "decompress", wcc, out)  # codec found from the file
    assert code == 0 and "a.wcc -> " in stdout
    back, sr = audio_read(out)
    assert sr == SR and back.shape == (1, 20000)
    assert (back - expected_decode(env["mono"], wav, 8000)).abs().max() <= 1 / 32768 + 1e-6


def test_bitrate_and_ratio_reported_by_the_library(env, tmp_path):
    stats = compress_file(env["input"], tmp_path / "b.wcc", model=env["root"] / "mono", coding="packed")
    assert stats.coding == "packed" and stats.payload_bytes == (4 * 2500 * 6 + 7) // 8
    assert stats.duration == 2.5 and stats.segments == 1
    assert stats.payload_kbps == pytest.approx(stats.payload_bytes * 8 / 2.5 / 1000)
    assert stats.file_bytes == (tmp_path / "b.wcc").stat().st_size
    assert stats.ratio == pytest.approx(20000 * 2 / stats.file_bytes)
    assert stats.nominal_kbps == pytest.approx(24.0)
    entropy = compress_file(env["input"], tmp_path / "c.wcc", model=env["root"] / "mono", coding="entropy")
    a = decompress_file(tmp_path / "b.wcc", tmp_path / "b.wav")
    decompress_file(tmp_path / "c.wcc", tmp_path / "c.wav")
    assert entropy.coding == "entropy" and a.sample_rate == SR
    assert torch.equal(audio_read(tmp_path / "b.wav")[0], audio_read(tmp_path / "c.wav")[0])


def test_bandwidth_input_conversion_and_output_options(env, capsys, tmp_path):
    stereo_in = tmp_path / "st.wav"
    wav, _ = audio_read(env["input"], sample_rate=16000)
    audio_write(stereo_in, torch.cat([wav, -wav]), 16000, strategy="none", add_suffix=False)
    wcc = tmp_path / "st.wcc"
    code, _, _ = run(capsys, "compress", stereo_in, wcc, "-m", env["root"] / "mono", "-b", "12", "-q")
    assert code == 0
    f = read_wcc(wcc)
    assert f.num_codebooks == 2 and (f.source_sample_rate, f.source_channels) == (16000, 2)
    code, stdout, _ = run(capsys, "decompress", wcc, tmp_path / "st.flac", "--sample-rate", "16000",
                          "--channels", "2", "-q")
    assert code == 0 and stdout == ""
    info = audio_info(tmp_path / "st.flac")
    assert (info.sample_rate, info.channels, info.frames) == (16000, 2, 40000)


def test_renormalised_chunked_stereo_codec(env, capsys, tmp_path):
    wcc, out = tmp_path / "s.wcc", tmp_path / "s.wav"
    assert run(capsys, "compress", env["input"], wcc, "-m", env["root"] / "stereo", "-q")[0] == 0
    f = read_wcc(wcc)
    assert f.channels == 2 and len(f.segments) == 1 and f.segments[0].scale.shape == (1, 6)
    assert run(capsys, "decompress", wcc, out, "-q", "--bits", "32")[0] == 0
    back, _ = audio_read(out)
    wav, _ = audio_read(env["input"])
    expected = expected_decode(env["stereo"], wav.repeat(2, 1), 20000)
    assert back.shape == (2, 20000) and (back - expected).abs().max() < 1e-6


def test_outputs_are_never_overwritten_without_force(env, capsys, tmp_path):
    wcc, out = tmp_path / "o.wcc", tmp_path / "o.wav"
    wcc.write_bytes(b"precious")
    out.write_bytes(b"precious")
    code, _, err = run(capsys, "compress", env["input"], wcc, "-m", env["root"] / "mono", "-q")
    assert code == 2 and err == f"wavecraft compress: error: output {wcc} already exists; pass --force to overwrite it\n"
    assert wcc.read_bytes() == b"precious"
    assert run(capsys, "compress", env["input"], wcc, "-m", env["root"] / "mono", "-q", "--force")[0] == 0
    code, _, err = run(capsys, "decompress", wcc, out, "-q")
    assert code == 2 and "already exists; pass --force" in err and out.read_bytes() == b"precious"
    assert run(capsys, "decompress", wcc, out, "-q", "-f")[0] == 0 and audio_info(out).frames == 20000


def one_line_error(capsys, *argv) -> str:
    code, _, err = run(capsys, *argv, "-q")
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_compress_errors(env, capsys, tmp_path):
    model = env["root"] / "mono"
    err = one_line_error(capsys, "compress", tmp_path / "none.wav", tmp_path / "x.wcc", "-m", model)
    assert "audio file not found" in err and "none.wav" in err
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"\x00" * 100)
    assert "cannot decode audio file" in one_line_error(capsys, "compress", junk, tmp_path / "x.wcc", "-m", model)
    import wavecraft.models.registry as registry

    registry.DEFAULT_CODEC, saved = None, registry.DEFAULT_CODEC
    try:
        assert "no codec given: pass --model" in one_line_error(capsys, "compress", env["input"], tmp_path / "x.wcc")
    finally:
        registry.DEFAULT_CODEC = saved
    err = one_line_error(capsys, "compress", env["input"], tmp_path / "x.wcc", "-m", model, "-b", "100")
    assert "bandwidth 100 kbps is out of range" in err
    err = one_line_error(capsys, "compress", env["input"], tmp_path / "x.wcc", "-m", tmp_path / "no_model")
    assert "no_model" in err
    assert not (tmp_path / "x.wcc").exists()


def test_decompress_errors(env, capsys, tmp_path):
    wcc = tmp_path / "d.wcc"
    compress_file(env["input"], wcc, model=env["root"] / "mono")
    data = wcc.read_bytes()
    bad = tmp_path / "bad.wcc"
    bad.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    assert "is corrupted: checksum mismatch" in one_line_error(capsys, "decompress", bad, tmp_path / "x.wav")
    bad.write_bytes(data[: len(data) // 2])
    assert "is truncated" in one_line_error(capsys, "decompress", bad, tmp_path / "x.wav")
    assert "is not a .wcc file" in one_line_error(capsys, "decompress", env["input"], tmp_path / "x.wav")
    assert ".wcc file not found" in one_line_error(capsys, "decompress", tmp_path / "nope.wcc", tmp_path / "x.wav")
    err = one_line_error(capsys, "decompress", wcc, tmp_path / "x.aiff")
    assert "cannot tell the audio format" in err
    err = one_line_error(capsys, "decompress", wcc, tmp_path / "x.wav", "--model", env["root"] / "other")
    assert f"{wcc} was encoded with codec '{(env['root'] / 'mono').resolve()}' (weights sha256 " in err
    assert "but model 'other' has weights sha256" in err and "decode it with the codec that made it" in err
    assert not (tmp_path / "x.wav").exists()


def test_recorded_codec_that_moved(env, capsys, tmp_path):
    moved = tmp_path / "codec"
    shutil.copytree(env["root"] / "mono", moved)
    wcc = tmp_path / "m.wcc"
    compress_file(env["input"], wcc, model=moved)
    shutil.move(moved, tmp_path / "elsewhere")
    err = one_line_error(capsys, "decompress", wcc, tmp_path / "m.wav")
    assert f"was made with codec '{moved.resolve()}', which cannot be loaded here" in err and "pass --model" in err
    assert run(capsys, "decompress", wcc, tmp_path / "m.wav", "-m", tmp_path / "elsewhere", "-q")[0] == 0


def test_hugging_face_48khz_checkpoint(hf_codec_folder, capsys, tmp_path):
    # The released 48 kHz structure (stereo, renormalised, 1 s chunks) loaded from a transformers
    # save_pretrained folder; a 1.5 s input spans two segments of 1 s.
    folder = hf_codec_folder("48khz")
    wav = 0.3 * torch.randn(2, 72000)
    audio_write(tmp_path / "in", wav, 48000, strategy="none")
    wav, _ = audio_read(tmp_path / "in.wav")
    wcc = tmp_path / "x.wcc"
    code, stdout, _ = run(capsys, "compress", tmp_path / "in.wav", wcc, "-m", folder, "-b", "6", "--segment", "1")
    assert code == 0 and "4 codebooks x 1024 (6.00 kbps nominal)" in stdout
    f = read_wcc(wcc)
    assert [s.scale.shape for s in f.segments] == [(1, 2), (1, 1)]  # one scale per 1 s chunk (1 % overlap)
    assert run(capsys, "decompress", wcc, tmp_path / "x.wav", "--bits", "32", "-q")[0] == 0
    back, sr = audio_read(tmp_path / "x.wav")
    from wavecraft.codec import load_codec

    codec = load_codec(folder)
    codec.set_bandwidth(6.0)
    assert sr == 48000 and (back - expected_decode(codec, wav, 48000)).abs().max() < 1e-6
