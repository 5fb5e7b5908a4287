"""Loading codecs from every supported format: Hugging Face EnCodec and MusicGen folders, audiocraft
compression_state_dict.bin (full and `pretrained` pointer), wavecraft folders, the HF cache."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch

import wavecraft
from wavecraft.errors import CheckpointError
from wavecraft.models.loaders.codec_audiocraft import state_dict_from_audiocraft, state_dict_to_audiocraft
from wavecraft.models.loaders.native import load_native, save_codec, save_native

transformers = pytest.importorskip("transformers")

# Decoder positions of the transposed convolutions in SEANet with 4 ratios and one residual block
# per stage (audiocraft's `decoder.model.{3,6,9,12}.convtr.convtr`, per transformers' converter).
_CONVTR = {3, 6, 9, 12}


def _hf_key_to_audiocraft(key: str) -> str:
    """transformers EnCodec key -> audiocraft key, written from the published converter's table."""
    key = key.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1", "weight_v")
    m = re.match(r"^(encoder|decoder)\.layers\.(\d+)\.(.*)$", key)
    if not m:
        return re.sub(r"^quantizer\.layers\.(\d+)\.codebook\.", r"quantizer.vq.layers.\1._codebook.", key)
    part, index, rest = m.groups()
    wrap = "convtr" if part == "decoder" and int(index) in _CONVTR else "conv"
    if rest.startswith("conv."):
        rest = f"{wrap}.{wrap}.{rest[5:]}"
    elif rest.startswith("norm."):
        rest = f"{wrap}.{rest}"
    else:
        rest = re.sub(r"^(block\.\d+|shortcut)\.conv\.", r"\1.conv.conv.", rest)
    return f"{part}.model.{index}.{rest}"


# An audiocraft xp.cfg for the tiny 32 kHz shape, unresolved interpolations included (as exported).
_XP_CFG = """
sample_rate: 32000
channels: 1
compression_model: encodec
encodec: {autoencoder: seanet, quantizer: rvq, sample_rate: '${sample_rate}', channels: '${channels}',
          causal: false, renormalize: false}
seanet:
  dimension: 16
  channels: ${channels}
  causal: ${encodec.causal}
  n_filters: 4
  n_residual_layers: 1
  ratios: [8, 5, 4, 4]
  activation: ELU
  activation_params: {alpha: 1.0}
  norm: weight_norm
  norm_params: {}
  kernel_size: 7
  residual_kernel_size: 3
  last_kernel_size: 7
  dilation_base: 2
  pad_mode: constant
  true_skip: true
  compress: 2
  lstm: 2
  disable_norm_outer_blocks: 0
  decoder: {trim_right_ratio: 1.0, final_activation: null, final_activation_params: null}
  encoder: {}
rvq: {n_q: 4, q_dropout: false, bins: 2048, decay: 0.99, kmeans_init: true, kmeans_iters: 50,
      threshold_ema_dead_code: 2, orthogonal_reg_weight: 0.0}
"""


def _outputs(codec, seed: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    codes, scale = codec.encode(0.2 * torch.randn(1, codec.channels, codec.sample_rate // 5))
    return codes, codec.decode(codes, scale)


@pytest.fixture(scope="module")
def reference(hf_codec_folder):
    folder = hf_codec_folder("32khz")
    return folder, transformers.EncodecModel.from_pretrained(folder).eval(), wavecraft.load_codec(folder)


def _write_audiocraft(path: Path, model) -> Path:
    state = {_hf_key_to_audiocraft(k): v for k, v in model.state_dict().items()}
    torch.save({"best_state": state, "xp.cfg": _XP_CFG, "version": "1.3.0", "exported": True}, path)
    return path


def test_audiocraft_checkpoint_matches_transformers(tmp_path, reference) -> None:
    _, model, hf_codec = reference
    path = _write_audiocraft(tmp_path / "compression_state_dict.bin", model)
    codec = wavecraft.load_codec(path)
    assert codec.config.pad_mode == "constant" and codec.config.true_skip and not codec.causal
    codes, audio = _outputs(codec)
    ref_codes, ref_audio = _outputs(hf_codec)
    assert torch.equal(codes, ref_codes)
    torch.testing.assert_close(audio, ref_audio)
    # Same weights, same identity, whichever format they came from.
    assert codec.weights_hash() == hf_codec.weights_hash()
    # Our own mapping back to audiocraft names reproduces the file's keys exactly.
    assert set(state_dict_to_audiocraft(codec)) == set(torch.load(path, weights_only=True)["best_state"])
    assert set(state_dict_from_audiocraft(state_dict_to_audiocraft(codec))) == set(codec.state_dict())
    # Loading the folder that holds the file works too.
    assert wavecraft.load_codec(tmp_path).weights_hash() == codec.weights_hash()


def test_audiocraft_pointer_resolves_through_hf_cache(tmp_path, monkeypatch, reference) -> None:
    folder, _, hf_codec = reference
    cache = tmp_path / "hub"
    repo = cache / "models--facebook--encodec_32khz"
    shutil.copytree(folder, repo / "snapshots" / "abc123")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    pointer = tmp_path / "musicgen" / "compression_state_dict.bin"
    pointer.parent.mkdir()
    torch.save({"pretrained": "facebook/encodec_32khz", "exported": True, "version": "1.3.0"}, pointer)
    codec = wavecraft.load_codec(pointer)
    assert codec.name == "facebook/encodec_32khz"
    assert codec.weights_hash() == hf_codec.weights_hash()
    by_name = wavecraft.load_codec("facebook/encodec_32khz")
    assert by_name.name == "facebook/encodec_32khz"
    # A pointer that names itself is refused instead of recursing forever.
    loop = cache / "models--me--loop" / "snapshots" / "r1"
    loop.mkdir(parents=True)
    torch.save({"pretrained": "me/loop"}, loop / "compression_state_dict.bin")
    with pytest.raises(CheckpointError, match="too many nested 'pretrained' pointers"):
        wavecraft.load_codec("me/loop")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    with pytest.raises(CheckpointError, match=r"huggingface-cli download facebook/encodec_32khz"):
        wavecraft.load_codec(pointer)


def test_unsafe_or_foreign_torch_files_are_refused(tmp_path) -> None:
    evil = tmp_path / "compression_state_dict.bin"
    torch.save({"best_state": {}, "xp.cfg": "", "obj": Path("/etc")}, evil)  # needs full unpickling
    with pytest.raises(CheckpointError, match="cannot safely load"):
        wavecraft.load_codec(evil)
    other = tmp_path / "other.bin"
    torch.save({"weights": torch.zeros(1)}, other)
    with pytest.raises(CheckpointError, match="not an audiocraft codec checkpoint"):
        wavecraft.load_codec(other)


def test_musicgen_folder_yields_its_codec(tmp_path, reference) -> None:
    _, model, hf_codec = reference
    from transformers import (EncodecConfig, MusicgenConfig, MusicgenDecoderConfig,
                              MusicgenForConditionalGeneration, T5Config)

    text = T5Config(vocab_size=32, d_model=8, d_kv=4, d_ff=16, num_layers=1, num_heads=2)
    decoder = MusicgenDecoderConfig(vocab_size=2049, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                    ffn_dim=32, num_codebooks=4)
    audio = EncodecConfig.from_dict(model.config.to_dict())
    musicgen = MusicgenForConditionalGeneration(
        MusicgenConfig(text_encoder=text.to_dict(), audio_encoder=audio.to_dict(), decoder=decoder.to_dict())
    )
    musicgen.audio_encoder.load_state_dict(model.state_dict())
    musicgen.save_pretrained(tmp_path / "musicgen-tiny")
    codec = wavecraft.load_codec(tmp_path / "musicgen-tiny")
    assert codec.name == "musicgen-tiny"
    assert codec.weights_hash() == hf_codec.weights_hash()


def test_pytorch_model_bin_folder(tmp_path, reference) -> None:
    _, model, hf_codec = reference
    model.save_pretrained(tmp_path / "bin", safe_serialization=False) if _takes_safe_flag() else _save_bin(model, tmp_path / "bin")
    codec = wavecraft.load_codec(tmp_path / "bin" / "pytorch_model.bin")
    assert codec.weights_hash() == hf_codec.weights_hash()


def _takes_safe_flag() -> bool:
    import inspect

    return "safe_serialization" in inspect.signature(transformers.EncodecModel.save_pretrained).parameters


def _save_bin(model, folder: Path) -> None:
    folder.mkdir()
    model.config.save_pretrained(folder)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")


def test_native_round_trip_and_overwrite_guard(tmp_path, reference) -> None:
    _, _, hf_codec = reference
    folder = save_codec(hf_codec, tmp_path / "mine")
    codec = wavecraft.load_codec(folder)
    assert codec.name == "mine"  # a local folder's codec is named after the folder
    assert codec.config == hf_codec.config
    assert codec.weights_hash() == hf_codec.weights_hash()
    codes, audio = _outputs(codec)
    ref_codes, ref_audio = _outputs(hf_codec)
    assert torch.equal(codes, ref_codes) and torch.equal(audio, ref_audio)
    with pytest.raises(CheckpointError, match="exists and is not empty; choose another folder or pass overwrite=True"):
        save_codec(hf_codec, folder)
    save_codec(hf_codec, folder, overwrite=True)
    assert wavecraft.load_codec(folder, device="cpu").weights_hash() == hf_codec.weights_hash()
    with pytest.raises(CheckpointError, match="cannot move codec to device 'nowhere'"):
        wavecraft.load_codec(folder, device="nowhere")


def test_native_generic_format_and_errors(tmp_path) -> None:
    state = {"a.weight": torch.arange(6.0).view(2, 3), "b": torch.tensor([1, 2])}
    save_native(tmp_path / "x", "musicgen", {"dim": 8}, state, extra={"note": "hi"})
    kind, cfg, loaded, extra = load_native(tmp_path / "x")
    assert (kind, cfg, extra) == ("musicgen", {"dim": 8}, {"note": "hi"})
    assert torch.equal(loaded["a.weight"], state["a.weight"]) and torch.equal(loaded["b"], state["b"])
    with pytest.raises(CheckpointError, match="holds a wavecraft 'musicgen' checkpoint, not a codec"):
        wavecraft.load_codec(tmp_path / "x")
    (tmp_path / "x" / "config.json").write_text('{"format": "wavecraft", "kind": "codec", "version": 99, "config": {}}')
    with pytest.raises(CheckpointError, match="format version 99"):
        load_native(tmp_path / "x")
    (tmp_path / "x" / "model.safetensors").unlink()
    (tmp_path / "x" / "config.json").write_text('{"format": "wavecraft", "kind": "codec", "version": 1, "config": {}}')
    with pytest.raises(CheckpointError, match="model.safetensors is missing"):
        load_native(tmp_path / "x")
    with pytest.raises(CheckpointError, match="must be plain JSON"):
        save_native(tmp_path / "y", "codec", {}, state, extra={"t": torch.zeros(1)})


def test_mismatched_weights_are_reported(tmp_path, reference) -> None:
    folder, _, _ = reference
    bad = tmp_path / "bad"
    shutil.copytree(folder, bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["num_filters"] = 8
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="does not match the model its config describes: .*wrong shapes"):
        wavecraft.load_codec(bad)


def test_unknown_paths_and_names(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="no such file or folder"):
        wavecraft.load_codec(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="holds no codec checkpoint"):
        wavecraft.load_codec(tmp_path / "empty")


def test_read_safetensors_matches_safetensors_and_rejects_broken_files(tmp_path):
    from safetensors.torch import save_file

    from wavecraft.models.loaders.native import read_safetensors

    tensors = {"a": torch.randn(3, 5).bfloat16(), "b": torch.arange(7), "c": torch.tensor(True),
               "d": torch.randn(0, 4), "e": torch.randn(2).half(), "x.y": torch.randint(0, 255, (9,), dtype=torch.uint8)}
    save_file(tensors, str(tmp_path / "t.safetensors"), metadata={"note": "kept out"})
    got = read_safetensors(tmp_path / "t.safetensors")
    assert set(got) == set(tensors)
    assert all(got[k].dtype == v.dtype and torch.equal(got[k], v) for k, v in tensors.items())
    assert list(read_safetensors(tmp_path / "t.safetensors", prefix="x.")) == ["y"]
    data = (tmp_path / "t.safetensors").read_bytes()
    (tmp_path / "short.safetensors").write_bytes(data[:-10])
    with pytest.raises(CheckpointError, match="truncated"):
        read_safetensors(tmp_path / "short.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        read_safetensors(tmp_path / "junk.safetensors")

    def with_header(header: str) -> Path:
        path = tmp_path / "h.safetensors"
        path.write_bytes(len(header).to_bytes(8, "little") + header.encode() + b"\0" * 16)
        return path

    with pytest.raises(CheckpointError, match="not a JSON object"):
        read_safetensors(with_header("[1, 2]"))
    with pytest.raises(CheckpointError, match="malformed entry"):
        read_safetensors(with_header('{"w": {"dtype": "F32", "shape": [-1, 4], "data_offsets": [0, 16]}}'))
    with pytest.raises(CheckpointError, match="unsupported or malformed"):
        read_safetensors(with_header('{"w": {"dtype": "F8_E4M3", "shape": [4], "data_offsets": [0, 4]}}'))
