"""What ships inside the package: the bundled codec loads offline, is the default of `wavecraft
compress` and reconstructs music it never saw; without a generation model `wavecraft demo`
round-trips the packaged sample (the generation models are tested in test_bundled_models.py)."""
import pytest
import torch

from wavecraft.cli import main
from wavecraft.errors import CheckpointError
from wavecraft.models import registry


@pytest.fixture(scope="module")
def codec():
    from wavecraft.codec import load_codec

    return load_codec("codec")


def test_bundled_codec_shape_and_card(codec):
    assert registry.DEFAULT_CODEC == "codec"
    assert (registry.resolve_bundled("codec") / "MODEL_CARD.md").is_file()
    assert (codec.sample_rate, codec.channels, codec.frame_rate) == (16000, 1, 50)
    assert (codec.cardinality, codec.total_codebooks) == (1024, 4)
    assert codec.available_bandwidths() == [0.5, 1.0, 1.5, 2.0]


def test_bundled_codec_reconstructs_the_held_out_sample(codec):
    from wavecraft.audio import audio_read
    from wavecraft.cli.demo import SAMPLE
    from wavecraft.metrics.audio import si_snr

    wav, sr = audio_read(SAMPLE, duration=3.0)
    codes, scale = codec.encode(wav[None])
    out = codec.decode(codes, scale, length=wav.shape[-1])
    # A trained codec, not a random one: the reconstruction follows the waveform (a random or
    # collapsed codec sits far below 0 dB).
    assert float(si_snr(out, wav[None])) > 2.0
    codec.set_num_codebooks(1)
    coarse = codec.decode(codec.encode(wav[None])[0], scale, length=wav.shape[-1])
    codec.set_num_codebooks(4)
    assert float(si_snr(coarse, wav[None])) < float(si_snr(out, wav[None]))  # more codebooks, better


def test_compress_uses_the_bundled_codec_by_default_and_round_trips(codec, tmp_path):
    from wavecraft.audio import audio_read, audio_write
    from wavecraft.codec.bitstream import read_wcc

    t = torch.arange(16000) / 16000
    audio_write(tmp_path / "tone", (0.3 * torch.sin(2 * torch.pi * 440 * t))[None], 16000, strategy="none")
    assert main(["compress", str(tmp_path / "tone.wav"), str(tmp_path / "tone.wcc"), "-q"]) == 0
    assert main(["decompress", str(tmp_path / "tone.wcc"), str(tmp_path / "back.wav"), "-q"]) == 0
    stored = read_wcc(tmp_path / "tone.wcc")
    assert stored.codec_name == "codec" and stored.weights_sha256 == codec.weights_hash()
    original, _ = audio_read(tmp_path / "tone.wav")
    codes, scale = codec.encode(original[None])
    assert (stored.codes == codes[0].numpy()).all()  # the file holds exactly the codec's codes
    wav, _ = audio_read(tmp_path / "back.wav")
    expected = codec.decode(codes, scale, length=16000)[0].clamp(-1, 1)
    assert wav.shape == (1, 16000) and (wav - expected).abs().max() < 2 / 32768 + 1e-6  # 16-bit rounding


def test_demo_round_trips_the_sample_when_no_generation_model_is_bundled(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(registry, "DEFAULT_MODEL", None)  # e.g. a build that ships the codec only
    assert main(["demo", "--out-dir", str(tmp_path)]) == 0
    out = capsys.readouterr()
    assert "no bundled generation model" in out.err and "SI-SNR" in out.out and "kbps" in out.out
    assert (tmp_path / "demo.wcc").is_file() and (tmp_path / "demo_decoded.wav").is_file()
    assert main(["demo", "--out-dir", str(tmp_path)]) == 0  # never overwrites: new names
    assert (tmp_path / "demo_1.wcc").is_file() and (tmp_path / "demo_decoded_1.wav").is_file()


def test_a_missing_bundled_folder_is_a_clear_error(monkeypatch, tmp_path):
    from wavecraft.codec import load_codec

    monkeypatch.setitem(registry.BUNDLED, "codec", str(tmp_path / "gone"))
    with pytest.raises(CheckpointError, match="bundled model 'codec' is missing"):
        load_codec("codec")


def test_the_bundled_codec_is_not_a_generation_model():
    from wavecraft.models.loaders.auto import load_model

    with pytest.raises(CheckpointError, match="holds a codec"):
        load_model("codec")
