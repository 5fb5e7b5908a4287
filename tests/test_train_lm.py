"""End-to-end LM training on codes of a tiny codec: learning, exact resume, token cache, export, fine-tuning."""
import pytest
import torch

from wavecraft.errors import ConfigError
from wavecraft.train import make_solver
from wavecraft.train.logging import read_metrics
from wavecraft.train.toydata import make_toy_dataset

RECIPE = "recipes/tiny_lm.yaml"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A toy dataset and a tiny codec trained on it for a few steps (exported like a user would)."""
    from wavecraft.train.export import export_run

    root = tmp_path_factory.mktemp("lm")
    manifest = make_toy_dataset(root / "toy", n_files=6, sample_rate=8000, duration=1.0)
    make_solver("codec", "recipes/tiny_codec.yaml", [f"data.manifest={manifest}", f"run.out_dir={root / 'codec_run'}",
                                                     "run.steps=8", "losses.adv=0", "losses.feat=0"]).run()
    export_run(root / "codec_run", root / "codec")
    return manifest, root / "codec"


def _overrides(setup, out, *extra):
    manifest, codec = setup
    return [f"data.manifest={manifest}", f"codec={codec}", f"run.out_dir={out}", *extra]


def test_lm_learns_from_scratch(setup, tmp_path):
    solver = make_solver("lm", RECIPE, _overrides(setup, tmp_path / "run", "run.steps=40"))
    before = solver.validate()
    assert before["ce"] == pytest.approx(torch.log(torch.tensor(64.0)).item(), abs=0.5)  # ~uniform at start
    after = solver.run()
    assert after["ce"] < before["ce"] - 1.0
    assert all(after[f"ce_q{k}"] < before[f"ce_q{k}"] for k in range(4))
    samples = tmp_path / "run" / "samples" / "step_0000040"
    assert (samples / "00.wav").is_file() and "\t" in (samples / "prompts.txt").read_text()


def test_resume_is_exact_with_condition_dropout(setup, tmp_path):
    common = ["run.steps=6", "run.log_every=1", "optim.ema_decay=0.9", "cfg_dropout=0.5",
              "attribute_dropout={genre: 0.5}", "data.captions.merge_text_p=0.5"]
    make_solver("lm", RECIPE, _overrides(setup, tmp_path / "whole", *common)).run()
    make_solver("lm", RECIPE, _overrides(setup, tmp_path / "split", *common, "run.stop_at=2")).run()
    make_solver("lm", RECIPE, _overrides(setup, tmp_path / "split", *common, "run.stop_at=4")).run()
    make_solver("lm", RECIPE, _overrides(setup, tmp_path / "split", *common)).run()
    whole, split = read_metrics(tmp_path / "whole", "train"), read_metrics(tmp_path / "split", "train")
    assert [r["step"] for r in split] == list(range(1, 7))
    assert [r["ce"] for r in whole] == [r["ce"] for r in split]
    assert read_metrics(tmp_path / "whole", "valid")[-1]["ce"] == read_metrics(tmp_path / "split", "valid")[-1]["ce"]


def test_condition_dropout_rates(setup, tmp_path):
    solver = make_solver("lm", RECIPE, _overrides(setup, tmp_path / "run", "cfg_dropout=0.3",
                                                  "attribute_dropout={genre: 0.5}"))
    from wavecraft.data.dataset import collate_items

    batch = collate_items([solver.train_dataset()[i] for i in range(400)])
    rows = solver._rows(batch, dropout=True)
    no_text = sum(r is None for r in rows["description"]) / 400
    no_genre = sum(r is None for r in rows["genre"]) / 400
    assert no_text == pytest.approx(0.3, abs=0.07)
    assert no_genre == pytest.approx(0.3 + 0.7 * 0.5, abs=0.07)  # CFG drop or its own drop
    assert solver._rows(batch, dropout=False)["genre"][0] in ("test tone", "ambient", "electronic")


def test_token_cache_matches_codec_and_trains(setup, tmp_path):
    from wavecraft.audio import audio_read
    from wavecraft.codec import load_codec
    from wavecraft.data.tokens import TokenDataset, build_token_cache, TokenCacheError
    from wavecraft.data.dataset import DataConfig

    manifest, codec_dir = setup
    codec = load_codec(str(codec_dir))
    codec.set_num_codebooks(4)
    cache, skipped = build_token_cache(manifest, codec, tmp_path / "cache")
    assert skipped == 0
    with pytest.raises(TokenCacheError, match="--force"):
        build_token_cache(manifest, codec, tmp_path / "cache")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(TokenCacheError, match="not a token cache; refusing"):
        build_token_cache(manifest, codec, tmp_path / "mine", force=True)
    ds = TokenDataset(cache, DataConfig(segment_duration=0.25, sample_rate=8000), seed=0)
    item = ds[3]
    assert item["codes"].shape == (4, 250) and item["caption"]
    entry = next(e for e in ds.entries if e["path"] == item["path"])
    wav, _ = audio_read(item["path"])
    full, _ = codec.encode(wav[None])
    starts = [s for s in range(full.shape[-1] - 249) if torch.equal(full[0, :, s:s + 250], item["codes"])]
    assert starts and entry["frames"] == full.shape[-1]
    solver = make_solver("lm", RECIPE, _overrides(setup, tmp_path / "run", f"token_cache={cache}", "run.steps=3"))
    assert solver.run()["ce"] > 0


def test_export_generate_and_finetune(setup, tmp_path):
    from wavecraft import MusicGen
    from wavecraft.cli import main

    run = tmp_path / "run"
    make_solver("lm", RECIPE, _overrides(setup, run, "run.steps=20")).run()
    assert main(["export", str(run), str(tmp_path / "model")]) == 0
    model = MusicGen.get_pretrained(str(tmp_path / "model"), device="cpu")
    assert model.max_duration == 0.25 and model.sample_rate == 8000
    model.set_generation_params(duration=0.1, top_k=10, extend_stride=0.1)
    wav = model.generate(["a pure sine tone on A", None], seed=1)
    assert wav.shape == (2, 1, 800) and torch.isfinite(wav).all()
    # Fine-tune the exported model: it starts where the first run ended, far below chance.
    tuned = make_solver("lm", RECIPE, [f"init_from={tmp_path / 'model'}", f"data.manifest={setup[0]}",
                                       f"run.out_dir={tmp_path / 'tuned'}", "run.steps=2", "model=null"])
    assert tuned.validate()["ce"] < read_metrics(run, "valid")[-1]["ce"] + 0.3
    assert tuned.run()


def test_lm_config_errors(setup, tmp_path):
    with pytest.raises(ConfigError, match="exactly one of `model`"):
        make_solver("lm", RECIPE, _overrides(setup, tmp_path, "init_from=somewhere"))
    with pytest.raises(ConfigError, match="attribute_dropout names \\['mood'\\]"):
        make_solver("lm", RECIPE, _overrides(setup, tmp_path, "attribute_dropout={mood: 0.1}"))
    with pytest.raises(ConfigError, match="LM expects 4 of 128"):
        make_solver("lm", RECIPE, _overrides(setup, tmp_path, "model.lm.card=128"))


def test_melody_conditioning_trains_from_the_segment_itself(setup, tmp_path):
    melody = ["model.conditioners={genre: {type: lut, vocab: [ambient], output_dim: 32}, "
              "self_wav: {type: chroma, output_dim: 32, length: 8}}",
              "model.fuse={genre: cross, self_wav: prepend}", "attribute_dropout={self_wav: 0.5}"]
    solver = make_solver("lm", RECIPE, _overrides(setup, tmp_path / "run", "run.steps=2", *melody))
    from wavecraft.data.dataset import collate_items

    batch = collate_items([solver.train_dataset()[i] for i in range(2)])
    wav, sr = solver._rows(batch, dropout=False)["self_wav"][0]
    assert sr == 8000 and torch.equal(wav, batch["wav"][0])
    assert solver.run()["ce"] > 0


def test_melody_conditioning_trains_from_a_token_cache_with_the_audio_under_each_segment(setup, tmp_path):
    from wavecraft.audio import audio_read
    from wavecraft.codec import load_codec
    from wavecraft.data.dataset import DataConfig, collate_items
    from wavecraft.data.tokens import TokenDataset, build_token_cache

    manifest, codec_dir = setup
    codec = load_codec(str(codec_dir))
    codec.set_num_codebooks(4)
    cache, _ = build_token_cache(manifest, codec, tmp_path / "cache")
    ds = TokenDataset(cache, DataConfig(segment_duration=0.25, sample_rate=8000), seed=0, with_audio=True)
    item = ds[5]
    hop = 8000 // int(codec.frame_rate)
    assert item["wav"].shape == (1, 2000)
    # The audio is the very stretch of the file the codes encode: re-encoding it gives them back.
    wav, _ = audio_read(item["path"])
    full, _ = codec.encode(wav[None])
    starts = [s for s in range(full.shape[-1] - 249) if torch.equal(full[0, :, s:s + 250], item["codes"])]
    assert any(torch.allclose(item["wav"], wav[:, s * hop:s * hop + 2000], atol=1e-6) for s in starts)
    assert not torch.allclose(item["wav"], wav[:, :2000], atol=1e-3) or starts == [0]

    melody = ["model.conditioners={genre: {type: lut, vocab: [ambient], output_dim: 32}, "
              "self_wav: {type: chroma, output_dim: 32, length: 8}}",
              "model.fuse={genre: cross, self_wav: prepend}"]
    solver = make_solver("lm", RECIPE, _overrides(setup, tmp_path / "run", f"token_cache={cache}", "run.steps=2",
                                                  *melody))
    batch = collate_items([solver.train_dataset()[i] for i in range(2)])
    assert torch.equal(solver._rows(batch, dropout=False)["self_wav"][0][0], batch["wav"][0])
    assert solver.run()["ce"] > 0


def test_finetune_a_hugging_face_musicgen_and_export_it(setup, tmp_path):
    """Meta's models reach us through the loaders: fine-tune an HF-format MusicGen (its T5 inside)."""
    from wavecraft import MusicGen
    from wavecraft.models.tiny import tiny_hf_musicgen
    from wavecraft.train.export import export_run

    tiny_hf_musicgen(tmp_path / "hf", sample_rate=8000)
    run = tmp_path / "run"
    solver = make_solver("lm", RECIPE, [f"init_from={tmp_path / 'hf'}", "model=null", f"data.manifest={setup[0]}",
                                        f"run.out_dir={run}", "run.steps=3", "run.log_every=1", "attribute_dropout={}"])
    first = {k: v.clone() for k, v in solver.module.lm.state_dict().items()}
    solver.run()
    assert any(not torch.equal(v, solver.module.lm.state_dict()[k]) for k, v in first.items())
    export_run(run, tmp_path / "tuned")
    model = MusicGen.get_pretrained(str(tmp_path / "tuned"), device="cpu")
    for k, v in model.lm.state_dict().items():
        assert torch.equal(v, solver.module.lm.state_dict()[k])
    model.set_generation_params(duration=0.02, top_k=5)
    assert model.generate(["a calm tune"], seed=0).shape[:2] == (1, 1)


def test_cpu_bfloat16_autocast_trains_close_to_float32(setup, tmp_path):
    losses = {}
    for flag in ("false", "true"):
        solver = make_solver("lm", RECIPE, _overrides(setup, tmp_path / flag, "run.steps=6", "run.log_every=1",
                                                      f"run.cpu_autocast={flag}"))
        with solver.autocast():
            probe = torch.ones(2, 2) @ torch.ones(2, 2)
        assert probe.dtype == (torch.bfloat16 if flag == "true" else torch.float32)
        solver.run()
        losses[flag] = [r["ce"] for r in read_metrics(tmp_path / flag, "train")]
    # Same data, same init: bfloat16 matmuls move the loss curve by rounding only.
    assert len(losses["true"]) == 6
    assert losses["true"] == pytest.approx(losses["false"], rel=0.03)
    assert losses["true"] != losses["false"]
