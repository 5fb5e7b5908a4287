"""End-to-end codec training on a synthetic dataset: learning, exact resume, export, errors."""
import pytest
import torch

from wavecraft.errors import CheckpointError, ConfigError
from wavecraft.train import make_solver
from wavecraft.train.logging import read_metrics
from wavecraft.train.toydata import make_toy_dataset

RECIPE = "recipes/tiny_codec.yaml"


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return make_toy_dataset(tmp_path_factory.mktemp("toy"), n_files=6, sample_rate=8000, duration=1.0)


def _solver(manifest, out, *overrides, restart=False):
    return make_solver("codec", RECIPE, [f"data.manifest={manifest}", f"run.out_dir={out}", *overrides], restart=restart)


def test_reconstruction_improves(manifest, tmp_path):
    solver = _solver(manifest, tmp_path / "run", "run.steps=40", "losses.adversarial_start=30", "run.log_every=5")
    before = solver.validate()
    after = solver.run()
    train = read_metrics(tmp_path / "run", "train")
    assert [r["step"] for r in train] == [5, 10, 15, 20, 25, 30, 35, 40]
    assert "d_loss" in train[-1] and "d_loss" not in train[0]  # the GAN joins at step 30
    by_step = {r["step"]: r for r in train}
    assert by_step[30]["msspec"] < 0.7 * by_step[5]["msspec"]  # before the GAN joins (it perturbs at first)
    assert after["mel_distance"] < 0.8 * before["mel_distance"]
    assert after["si_snr"] > before["si_snr"] + 20  # dB
    assert (tmp_path / "run" / "samples" / "step_0000040" / "00_reconstruction.wav").is_file()
    assert read_metrics(tmp_path / "run", "valid")[-1]["step"] == 40


def test_resume_continues_with_identical_losses(manifest, tmp_path):
    common = ["run.steps=6", "run.log_every=1", "losses.adversarial_start=2", "optim.ema_decay=0.9",
              "optim.schedule=cosine", "optim.warmup_steps=2", "data.num_workers=1"]
    _solver(manifest, tmp_path / "whole", *common).run()
    _solver(manifest, tmp_path / "split", *common, "run.stop_at=3").run()
    resumed = _solver(manifest, tmp_path / "split", *common)
    assert resumed.step == 3
    resumed.run()
    whole, split = read_metrics(tmp_path / "whole", "train"), read_metrics(tmp_path / "split", "train")
    assert [r["step"] for r in split] == [1, 2, 3, 4, 5, 6]
    for a, b in zip(whole, split):
        for key in ("l1", "msspec", "commitment", "bandwidth", "lr"):
            assert a[key] == b[key], (a["step"], key)
        if a["step"] > 2:
            assert a["adv"] == b["adv"] and a["d_loss"] == b["d_loss"]


def test_export_loads_through_public_api(manifest, tmp_path):
    import soundfile

    import wavecraft
    from wavecraft.cli import main
    from wavecraft.train.export import codec_from_run

    run = tmp_path / "run"
    assert main(["train", "codec", "--config", RECIPE, f"data.manifest={manifest}", f"run.out_dir={run}",
                 "run.steps=3", "optim.ema_decay=0.5"]) == 0
    assert main(["export", str(run), str(tmp_path / "codec")]) == 0
    assert main(["export", str(run), str(tmp_path / "codec")]) == 2  # never overwrites silently
    codec = wavecraft.load_codec(str(tmp_path / "codec"))
    reference = codec_from_run(run)
    wav, sr = soundfile.read(str(manifest.parent / "sine_000.wav"), dtype="float32")
    x = torch.from_numpy(wav)[None, None]
    codes, scale = codec.encode(x)
    assert codes.shape == (1, 4, 1000) and sr == codec.sample_rate == 8000
    assert torch.equal(codes, reference.encode(x)[0])
    out = codec.decode(codes, scale, length=x.shape[-1])
    assert out.shape == x.shape and torch.isfinite(out).all()
    # --half stores float16 (half the bytes) that loads back as float32 weights rounded to float16.
    assert main(["export", str(run), str(tmp_path / "half"), "--half"]) == 0
    full_size = (tmp_path / "codec" / "model.safetensors").stat().st_size
    assert (tmp_path / "half" / "model.safetensors").stat().st_size < 0.6 * full_size
    half = wavecraft.load_codec(str(tmp_path / "half"))
    for (name, a), b in zip(codec.state_dict().items(), half.state_dict().values()):
        assert b.dtype == a.dtype
        if a.is_floating_point():
            assert torch.equal(b, a.half().float()), name


def test_config_errors_are_clear(manifest, tmp_path):
    with pytest.raises(ConfigError, match="must match model.sample_rate"):
        _solver(manifest, tmp_path / "a", "data.sample_rate=16000")
    with pytest.raises(ConfigError, match="unknown key 'lrr'"):
        _solver(manifest, tmp_path / "a", "optim.lrr=1")
    with pytest.raises(ConfigError, match="data.manifest is empty"):
        make_solver("codec", RECIPE, [f"run.out_dir={tmp_path / 'b'}"])
    _solver(manifest, tmp_path / "c", "run.steps=1").run()
    with pytest.raises(ConfigError, match="different `model` section.*--restart"):
        _solver(manifest, tmp_path / "c", "model.n_filters=8")
    restarted = _solver(manifest, tmp_path / "c", "model.n_filters=8", restart=True)
    assert restarted.step == 0 and not (tmp_path / "c" / "checkpoint.pt").exists()
    with pytest.raises(CheckpointError, match="not a codec run"):
        from wavecraft.train.export import codec_from_run
        import wavecraft.train.checkpoint as ck

        ck.save_checkpoint({"kind": "lm"}, tmp_path / "d" / "checkpoint.pt")
        codec_from_run(tmp_path / "d")


def test_corrupt_files_mid_run_are_skipped_and_counted(manifest, tmp_path):
    bad = tmp_path / "with_bad.jsonl"
    (tmp_path / "broken.wav").write_bytes(b"RIFF garbage")
    lines = manifest.read_text().replace('"path": "', f'"path": "{manifest.parent}/')
    bad.write_text(lines + f'{{"path": "{tmp_path / "broken.wav"}", "duration": 5.0, "sample_rate": 8000}}\n')
    solver = _solver(bad, tmp_path / "run", "run.steps=4", "run.log_every=4", "losses.adv=0", "losses.feat=0")
    solver.run()
    record = read_metrics(tmp_path / "run", "train")[-1]
    assert record["step"] == 4 and record["data_skipped"] > 0
    assert solver.bad_files == {str(tmp_path / "broken.wav")}


def test_refuses_a_folder_of_user_files(manifest, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("precious")
    with pytest.raises(ConfigError, match="not from a training run"):
        _solver(manifest, tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "precious"


def test_quantizer_warm_up_trains_an_autoencoder_first(manifest, tmp_path):
    solver = _solver(manifest, tmp_path / "run", "run.steps=6", "run.log_every=1", "losses.adv=0", "losses.feat=0",
                     "losses.quantizer_start=4")
    quantizer = solver.model.quantizer
    codebook = quantizer.layers[0].embed.clone()
    solver.run()
    assert bool(quantizer.layers[0].inited.item()) and not torch.equal(codebook, quantizer.layers[0].embed)
    rows = read_metrics(tmp_path / "run", "train")
    # No codebook (0 kbps) and no commitment before step 4, then quantized training from a k-means init.
    assert [r["bandwidth"] == 0.0 for r in rows] == [True] * 4 + [False] * 2
    assert all(r["commitment"] == 0.0 for r in rows[:4]) and rows[-1]["commitment"] > 0
