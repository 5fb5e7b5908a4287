"""The MusicGen / AudioGen API: seeds, continuation, sliding window, unconditional, formats, errors."""
import pytest
import torch
import yaml

from wavecraft.errors import CheckpointError, ConfigError
from wavecraft.lm import GenerationParams, generate_codes
from wavecraft.models.audiogen import AudioGen
from wavecraft.models.musicgen import MusicGen
from wavecraft.models.tiny import tiny_hf_musicgen

TEXTS = ["lofi beat with warm piano", "dog barking"]


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hf")
    tiny_hf_musicgen(folder, scale=4.0)
    return folder


@pytest.fixture()
def model(hf_folder):
    m = MusicGen.get_pretrained(hf_folder, device="cpu")
    m.set_generation_params(duration=0.2, top_k=20)
    return m


def test_properties_and_shapes(model):
    assert (model.sample_rate, model.frame_rate, model.max_duration, model.audio_channels) == (400, 50.0, 30.0, 1)
    wav, tokens = model.generate(TEXTS, return_tokens=True, seed=0)
    assert wav.shape == (2, 1, 80) and wav.dtype == torch.float32
    assert tokens.shape == (2, 4, 10) and tokens.dtype == torch.long


def test_seeds_reproduce_exactly(model):
    a = model.generate(TEXTS, return_tokens=True, seed=3)[1]
    b = model.generate(TEXTS, return_tokens=True, seed=3)[1]
    c = model.generate(TEXTS, return_tokens=True, seed=4)[1]
    assert torch.equal(a, b) and not torch.equal(a, c)
    model.set_generation_params(duration=0.2, top_k=20, seed=3)
    assert torch.equal(model.generate(TEXTS, return_tokens=True)[1], a)
    model.set_generation_params(duration=0.2, top_k=20)
    torch.manual_seed(11)
    d = model.generate(TEXTS, return_tokens=True)[1]
    torch.manual_seed(11)
    assert torch.equal(model.generate(TEXTS, return_tokens=True)[1], d)  # follows torch's global seed


def test_continuation_starts_with_the_prompt_tokens(model):
    prompt = torch.randn(2, 1, 48, generator=torch.Generator().manual_seed(0)) * 0.1  # 6 frames at 400 Hz
    prompt_codes, _ = model.codec.encode(prompt)
    wav, tokens = model.generate_continuation(prompt, 400, TEXTS, return_tokens=True, seed=0)
    assert tokens.shape == (2, 4, 10) and wav.shape == (2, 1, 80)
    assert torch.equal(tokens[..., :6], prompt_codes)
    # Resampling: the same prompt at 800 Hz is brought to the model's rate first.
    up = torch.nn.functional.interpolate(prompt, scale_factor=2)
    assert model.generate_continuation(up, 800, TEXTS, return_tokens=True, seed=0)[1].shape == (2, 4, 10)


def test_sliding_window_reprompts_with_the_tail_of_the_previous_window(model):
    model.config.max_duration = 0.2  # 10 frames per window
    model.set_generation_params(use_sampling=False, duration=0.4, extend_stride=0.1)  # 20 frames, stride 5
    steps = []
    model.set_custom_progress_callback(lambda done, total: steps.append((done, total)))
    _, tokens = model.generate(TEXTS, return_tokens=True)
    assert tokens.shape == (2, 4, 20)
    # 3 windows of 14 pattern steps: the first runs 13 of them, the others start after a 5-frame prompt (at step 6)
    assert steps[-1][0] == steps[-1][1] == 13 + 2 * 8
    # Window 2 produced frames 10..14 from the prompt of frames 5..9, window 3 frames 15..19 from 10..14.
    cond, null = model.prepare_conditions(TEXTS)
    greedy = GenerationParams(use_sampling=False, cfg_coef=3.0)
    second = generate_codes(model.lm, 10, cond, greedy, prompt=tokens[..., 5:10], null_conditions=null)
    third = generate_codes(model.lm, 10, cond, greedy, prompt=tokens[..., 10:15], null_conditions=null)
    assert torch.equal(second[..., 5:], tokens[..., 10:15])
    assert torch.equal(third[..., 5:], tokens[..., 15:20])
    first = generate_codes(model.lm, 10, cond, greedy, null_conditions=null)
    assert torch.equal(first, tokens[..., :10])


def test_sliding_window_with_a_short_last_window(model):
    # 35 frames through 20-frame windows moving by 10: the last window is 15 frames, 10 of them prompt.
    model.config.max_duration = 0.4
    model.set_generation_params(use_sampling=False, duration=0.7, extend_stride=0.2)
    assert model._windows(35, 0) == [(0, 0, 20), (10, 10, 20), (20, 10, 15)]
    _, tokens = model.generate(TEXTS, return_tokens=True)
    assert tokens.shape == (2, 4, 35)
    model.config.max_duration = 0.2


def test_unconditional_samples_from_the_null_condition(model):
    tokens = model.generate_unconditional(2, return_tokens=True, seed=5)[1]
    _, null = model.prepare_conditions([None, None])
    ref = generate_codes(model.lm, 10, null, GenerationParams(top_k=20, cfg_coef=1.0),
                         generator=torch.Generator().manual_seed(5))
    assert torch.equal(tokens, ref)
    assert not torch.equal(tokens, model.generate(TEXTS, return_tokens=True, seed=5)[1])


def test_native_format_round_trip(model, tmp_path):
    model.save_pretrained(tmp_path / "native")
    assert (tmp_path / "native" / "codec" / "config.json").is_file()
    assert (tmp_path / "native" / "text_encoder_description" / "config.json").is_file()
    again = MusicGen.get_pretrained(tmp_path / "native", device="cpu")
    again.set_generation_params(duration=0.2, top_k=20)
    a = model.generate(TEXTS, return_tokens=True, seed=1)
    b = again.generate(TEXTS, return_tokens=True, seed=1)
    assert torch.equal(a[1], b[1]) and torch.allclose(a[0], b[0])
    with pytest.raises(CheckpointError, match="exists and is not empty"):
        model.save_pretrained(tmp_path / "native")
    model.save_pretrained(tmp_path / "native", overwrite=True)


def _write_audiocraft(model, folder, solver="musicgen"):
    """An audiocraft-format checkpoint of `model`: state_dict.bin + compression_state_dict.bin + T5."""
    from wavecraft.models.loaders.lm_audiocraft import lm_state_to_audiocraft
    from wavecraft.models.loaders.native import save_codec

    folder.mkdir()
    t5 = model.conditioners["description"]
    t5.encoder.save_pretrained(str(folder / "t5"))
    t5.tokenizer.save_pretrained(str(folder / "t5"))
    save_codec(model.codec, folder / "codec")
    cfg = model.lm.cfg
    xp = {
        "solver": solver, "sample_rate": 400, "channels": 1, "dataset": {"segment_duration": 10},
        "transformer_lm": {"dim": cfg.dim, "num_heads": cfg.num_heads, "num_layers": cfg.num_layers, "hidden_scale": 2,
                           "n_q": "${codebooks.n_q}", "card": cfg.card, "activation": "gelu", "norm_first": True,
                           "bias_ff": False, "bias_attn": False, "bias_proj": False, "positional_embedding": "sin",
                           "cross_attention": True, "layer_scale": None, "two_step_cfg": False},
        "codebooks": {"n_q": cfg.n_q},
        "codebooks_pattern": {"modeling": "delay", "delay": {"delays": [0, 1, 2, 3], "flatten_first": 0, "empty_initial": 0}},
        "conditioners": {"description": {"model": "t5", "t5": {"name": str(folder / "t5"), "finetune": False}}},
        "fuser": {"cross_attention_pos_emb": False, "sum": [], "prepend": [], "cross": ["description"], "input_interpolate": []},
        "classifier_free_guidance": {"training_dropout": 0.3, "inference_coef": 3.0},
    }
    best = lm_state_to_audiocraft(model.lm)
    for k, v in t5.output_proj.state_dict().items():
        best[f"condition_provider.conditioners.description.output_proj.{k}"] = v
    torch.save({"best_state": best, "xp.cfg": yaml.safe_dump(xp), "version": "1.0", "exported": True}, folder / "state_dict.bin")
    torch.save({"pretrained": str(folder / "codec")}, folder / "compression_state_dict.bin")


def test_audiocraft_format_gives_identical_logits(model, tmp_path):
    _write_audiocraft(model, tmp_path / "ac")
    loaded = MusicGen.get_pretrained(tmp_path / "ac", device="cpu")
    assert not isinstance(loaded, AudioGen) and loaded.max_duration == 10
    codes = torch.randint(0, 64, (1, 4, 8))
    for text in TEXTS:  # one row at a time: no padding, where audiocraft and transformers differ
        ref, _ = model.lm.compute_predictions(codes, model.prepare_conditions([text])[0])
        out, _ = loaded.lm.compute_predictions(codes, loaded.prepare_conditions([text])[0])
        assert torch.allclose(ref, out, atol=1e-5)
    _write_audiocraft(model, tmp_path / "ag", solver="audiogen")
    audiogen = AudioGen.get_pretrained(tmp_path / "ag", device="cpu")
    assert isinstance(audiogen, AudioGen) and audiogen.extend_stride == 2.0 and audiogen.duration == 5.0
    with pytest.raises(CheckpointError, match="load it with MusicGen.get_pretrained"):
        AudioGen.get_pretrained(tmp_path / "ac")


def test_user_errors(model, tmp_path):
    with pytest.raises(ConfigError, match="not a single string"):
        model.generate("lofi beat")
    with pytest.raises(ConfigError, match="no melody"):
        model.generate_with_chroma(TEXTS, torch.zeros(2, 1, 400), 400)
    with pytest.raises(ConfigError, match="duration must be > 0"):
        model.set_generation_params(duration=0)
    with pytest.raises(ConfigError, match="longer than the duration"):
        model.generate_continuation(torch.zeros(1, 1, 400), 400, ["x"])
    with pytest.raises(CheckpointError, match="no such file or folder"):
        MusicGen.get_pretrained(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="holds no generation model"):
        MusicGen.get_pretrained(tmp_path / "empty")


def test_missing_pieces_name_what_to_provide(model, tmp_path, monkeypatch):
    import shutil

    _write_audiocraft(model, tmp_path / "ac")
    (tmp_path / "ac" / "compression_state_dict.bin").unlink()
    with pytest.raises(CheckpointError, match="compression_state_dict.bin .the codec. is missing"):
        MusicGen.get_pretrained(tmp_path / "ac")
    _write_audiocraft(model, tmp_path / "ac2")
    shutil.rmtree(tmp_path / "ac2" / "t5")  # the T5 named in xp.cfg is gone: nothing is downloaded
    with pytest.raises(CheckpointError, match="T5 text encoder folder not found"):
        MusicGen.get_pretrained(tmp_path / "ac2")
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text('{"model_type": "musicgen"}')  # a config.json without weights
    with pytest.raises(CheckpointError, match="no weights found .expected model.safetensors"):
        MusicGen.get_pretrained(hf)
    model.save_pretrained(tmp_path / "native")
    shutil.rmtree(tmp_path / "native" / "codec")
    with pytest.raises(CheckpointError, match="the codec/ sub-folder is missing"):
        MusicGen.get_pretrained(tmp_path / "native")
