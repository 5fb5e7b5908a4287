import json
import math

import pytest
import soundfile as sf
import torch

from wavecraft.errors import CheckpointError, WavecraftError
from wavecraft.metrics.classifier import (AudioClassifier, ClassifierConfig, load_classifier, stratified_split,
                                          train_classifier)

SR = 8000
TINY = ClassifierConfig(sample_rate=SR, n_fft=256, hop_length=80, n_mels=32, segment_seconds=0.5, channels=(8, 16))


def _clip(kind: str, g: torch.Generator, seconds: float = 1.0) -> torch.Tensor:
    t = torch.arange(int(SR * seconds)) / SR
    f = float(torch.empty(1).uniform_(150, 1500, generator=g))
    amp = float(torch.empty(1).uniform_(0.05, 0.8, generator=g))
    if kind == "sine":
        x = torch.sin(2 * math.pi * f * t)
    elif kind == "square":
        x = torch.sign(torch.sin(2 * math.pi * f * t))
    else:
        x = torch.randn(t.numel(), generator=g).clamp(-3, 3) / 3
    return amp * x


@pytest.fixture(scope="module")
def trained():
    g = torch.Generator().manual_seed(0)
    data = [(_clip(k, g), k) for k in ("sine", "square", "noise") for _ in range(20)]
    return train_classifier(data, TINY, epochs=8, batch_size=16, val_fraction=0.25)


def test_learns_sine_square_noise_well_above_chance(trained):
    model, report = trained
    assert report["labels"] == ["noise", "sine", "square"]
    assert (report["n_train"], report["n_val"]) == (45, 15)
    assert report["val_counts"] == {"noise": 5, "sine": 5, "square": 5}
    assert report["chance_accuracy"] == pytest.approx(1 / 3)
    assert report["val_accuracy"] >= 0.8
    assert sum(map(sum, report["val_confusion"])) == 15
    assert report["loss_history"][-1] < report["loss_history"][0]
    # Fresh clips, another length and sample rate (resampled inside), quiet: still recognised.
    g = torch.Generator().manual_seed(99)
    hits = sum(model.predict((_clip(k, g, 1.7) * 0.1, SR), None) == k for k in ("sine", "square", "noise") for _ in range(3))
    assert hits >= 7
    probs = model.predict_proba(torch.nn.functional.interpolate(_clip("noise", g)[None, None], scale_factor=2)[0], 2 * SR)
    assert probs.shape == (3,) and probs.sum() == pytest.approx(1.0, abs=1e-5)


def test_save_load_round_trip(trained, tmp_path):
    model, report = trained
    x = _clip("square", torch.Generator().manual_seed(5), 0.3)  # shorter than a window: tiled
    folder = model.save(tmp_path / "clf")
    loaded = load_classifier(folder)
    assert loaded.labels == model.labels and loaded.training_report["val_accuracy"] == report["val_accuracy"]
    torch.testing.assert_close(loaded.predict_proba(x), model.predict_proba(x))
    with pytest.raises(CheckpointError, match="exists and is not empty"):
        model.save(folder)
    model.save(folder, overwrite=True)
    from wavecraft.models.loaders.native import save_native

    save_native(tmp_path / "other", "codec", {"a": 1}, {"w": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="holds a wavecraft 'codec' checkpoint, not an audio classifier"):
        load_classifier(tmp_path / "other")


def test_trains_from_a_manifest_with_sidecar_labels(tmp_path):
    g = torch.Generator().manual_seed(1)
    lines = []
    for i, kind in enumerate(["sine", "noise"] * 3 + ["noise"]):
        wav = tmp_path / f"clip{i}.wav"
        sf.write(wav, _clip(kind, g).numpy(), SR)
        info = {"sound_class": kind} if i < 6 else {"description": "unlabelled"}
        (tmp_path / f"clip{i}.json").write_text(json.dumps(info))
        lines.append(json.dumps({"path": wav.name, "duration": 1.0, "sample_rate": SR}))
    manifest = tmp_path / "data.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    model, report = train_classifier(manifest, TINY, label_key="sound_class", epochs=1, val_fraction=0.34)
    assert report["labels"] == ["noise", "sine"] and report["n_train"] + report["n_val"] == 6
    assert report["val_counts"] == {"noise": 1, "sine": 1}
    with pytest.raises(WavecraftError, match="has a 'instrument_family' field"):
        train_classifier(manifest, TINY, label_key="instrument_family")


def test_label_checks():
    g = torch.Generator().manual_seed(2)
    data = [(_clip("sine", g), "sine"), (_clip("noise", g), "noise")]
    with pytest.raises(ValueError, match=r"labels \['sine'\] are not in config.labels \['noise', 'square'\]"):
        train_classifier(data, ClassifierConfig.from_dict({**TINY.to_dict(), "labels": ["noise", "square"]}), epochs=1)
    with pytest.raises(ValueError, match="at least two classes"):
        train_classifier([(_clip("sine", g), "sine")] * 3, TINY, epochs=1)
    with pytest.raises(WavecraftError, match="at least two labels"):
        AudioClassifier(TINY)


def test_stratified_split_is_reproducible_and_keeps_every_label():
    labels = ["a"] * 10 + ["b"] * 3 + ["c"]
    train, held = stratified_split(labels, 0.2, seed=3)
    assert sorted(train + held) == list(range(14))
    assert [labels[i] for i in held].count("a") == 2 and [labels[i] for i in held].count("b") == 1
    assert "c" not in [labels[i] for i in held]  # a single item stays in training
    assert stratified_split(labels, 0.2, seed=3) == (train, held)
