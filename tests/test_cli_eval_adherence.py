"""`wavecraft eval train-classifier` and `wavecraft eval adherence` end to end, on tiny inputs.

A classifier is trained on synthetic sine vs noise clips; a stub model that renders exactly what
is asked (or noise when unprompted) gives adherence numbers known in advance; a tiny random
MusicGen checks the real generation path (batching, seeds, files).
"""
import json
import math
import re

import pytest
import soundfile as sf
import torch

from adherence_signals import song
from wavecraft.cli import main
from wavecraft.metrics.classifier import load_classifier
from wavecraft.models.tiny import tiny_hf_musicgen

SR = 8000


def _clip(kind: str, seed: int, seconds: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(SR * seconds)) / SR
    amp = float(torch.empty(1).uniform_(0.1, 0.7, generator=g))
    if kind == "sine":
        return amp * torch.sin(2 * math.pi * float(torch.empty(1).uniform_(200, 2000, generator=g)) * t)
    return amp * (torch.randn(t.numel(), generator=g).clamp(-3, 3) / 3)


def _split(folder, kinds, seed, field="sound_class"):
    folder.mkdir(parents=True)
    lines = []
    for i, kind in enumerate(kinds):
        sf.write(folder / f"c{i}.wav", _clip(kind, seed + i).numpy(), SR)
        (folder / f"c{i}.json").write_text(json.dumps({field: kind, "description": f"a {kind}"}))
        lines.append(json.dumps({"path": f"c{i}.wav", "duration": 1.0, "sample_rate": SR}))
    (folder / "data.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "data.jsonl"


def _prompts(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("clf")
    train = _split(root / "train", ["sine", "noise"] * 8, seed=0)
    valid = _split(root / "valid", ["sine", "noise"] * 4, seed=100)
    return root, train, valid


@pytest.fixture(scope="module")
def classifier(data):
    """(folder, report JSON, printed summary) of one CLI training run."""
    root, train, valid = data
    out = root / "sine_noise"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["eval", "train-classifier", str(train), "--val", str(valid), "--label", "sound_class",
                   "-o", str(out), "--epochs", "6", "--json", str(root / "report.json")])
    assert rc == 0
    return out, json.loads((root / "report.json").read_text()), buf.getvalue()


def test_train_classifier_trains_on_train_and_measures_on_val(classifier):
    folder, report, text = classifier
    assert report["labels"] == ["noise", "sine"] and report["label_key"] == "sound_class"
    assert (report["n_train"], report["n_val"]) == (16, 8)  # held out = the --val manifest, not a split
    assert report["val_accuracy"] >= 0.875 and report["chance_accuracy"] == 0.5
    assert f"held-out accuracy {report['val_accuracy']:.3f}" in text and f"saved to {folder}" in text
    assert re.search(r"per class \(correct / held-out\): noise \d/4, sine \d/4", text)
    clf = load_classifier(folder)
    assert clf.training_report["label_key"] == "sound_class" and clf.training_report["val_manifests"]
    assert clf.predict((_clip("sine", 999), SR)) == "sine" and clf.predict((_clip("noise", 999), SR)) == "noise"


def test_train_classifier_caps_clips_per_class_and_refuses_to_overwrite(classifier, data, tmp_path, capsys):
    root, train, _ = data
    folder = classifier[0]
    before = (folder / "model.safetensors").read_bytes()
    assert main(["eval", "train-classifier", str(train), "--label", "sound_class", "-o", str(folder)]) == 2
    assert f"{folder} exists and is not empty" in capsys.readouterr().err
    assert (folder / "model.safetensors").read_bytes() == before
    out = tmp_path / "capped"
    assert main(["eval", "train-classifier", str(train), "--label", "sound_class", "-o", str(out),
                 "--max-per-class", "4", "--epochs", "1", "--json", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    # No --val: a stratified 20 % of the 8 capped clips is held out (one per class).
    assert report["train_counts"] == {"noise": 3, "sine": 3} and report["val_counts"] == {"noise": 1, "sine": 1}
    assert main(["eval", "train-classifier", str(train), "--label", "sound_class", "-o", str(out),
                 "--max-per-class", "2", "--epochs", "1", "--force"]) == 0
    assert load_classifier(out).training_report["n_train"] == 2


@pytest.mark.parametrize("args, message", [
    (["missing.jsonl", "--label", "sound_class"], "manifest not found: missing.jsonl"),
    (["TRAIN", "--label", "instrument_family"], "has a 'instrument_family' field in its sidecar JSON"),
    (["ONECLASS", "--label", "sound_class"], "only 1 distinct 'sound_class' value(s) (noise)"),
    (["TRAIN", "--label", "sound_class", "--max-per-class", "0"], "--max-per-class must be at least 1"),
])
def test_train_classifier_bad_input_is_one_line(data, tmp_path, capsys, args, message):
    root, train, _ = data
    one = root / "one" / "data.jsonl"
    if not one.exists():
        _split(root / "one", ["noise"] * 3, seed=7)
    args = [str(train) if a == "TRAIN" else str(one) if a == "ONECLASS" else a for a in args]
    assert main(["eval", "train-classifier", *args, "-o", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (tmp_path / "x").exists()


class StubModel:
    """Renders what a prompt asks for: a sine or noise for sound prompts, a song at the requested
    tempo and key for music prompts; unprompted, always noise. Records its generate calls."""

    name, sample_rate, max_duration, conditioners = "stub", SR, 30.0, {}

    def __init__(self):
        self.calls, self.params = [], None

    def to(self, device):
        return self

    def set_generation_params(self, **params):
        self.params = params

    def _render(self, text, seed):
        music = re.match(r"(\d+) bpm in ([A-G]) (major|minor)", text)
        if music:
            tonic = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}[music.group(2)]
            return song(float(music.group(1)), tonic, music.group(3), sr=SR, seconds=6.0)
        return _clip("sine" if "sine" in text else "noise", seed)

    def generate(self, texts, seed=None):
        self.calls.append(("cond", len(texts), seed))
        clips = [self._render(t, seed * 100 + i) for i, t in enumerate(texts)]
        n = max(c.numel() for c in clips)
        return torch.stack([torch.nn.functional.pad(c, (0, n - c.numel()))[None] for c in clips])

    def generate_unconditional(self, num_samples, seed=None):
        self.calls.append(("uncond", num_samples, seed))
        return torch.stack([_clip("noise", seed * 100 + i)[None] for i in range(num_samples)])


@pytest.fixture()
def stub(monkeypatch):
    model = StubModel()
    monkeypatch.setattr("wavecraft.models.loaders.auto.load_model", lambda name: model)
    return model


SOUND_PROMPTS = [{"id": f"p{i}", "description": f"a {k}", "sound_class": k}
                 for i, k in enumerate(["sine", "noise", "sine", "noise", "sine"])]


def test_adherence_table_against_the_unconditional_baseline(classifier, stub, tmp_path, capsys):
    prompts = _prompts(tmp_path / "prompts.jsonl", SOUND_PROMPTS)
    out_json, out_md = tmp_path / "a.json", tmp_path / "a.md"
    args = ["eval", "adherence", "stub", prompts, "--classifier", f"sound_class={classifier[0]}", "--seeds", "2",
            "--batch-size", "2", "--duration", "1.5", "--cfg", "2.5", "--json", str(out_json),
            "--markdown", str(out_md), "-q"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    # 5 prompts in batches of 2, per seed; seed s's batches continue seed s-1's numbering.
    assert stub.calls[:6] == [("cond", 2, 0), ("cond", 2, 1), ("cond", 1, 2), ("cond", 2, 3), ("cond", 2, 4),
                              ("cond", 1, 5)]
    assert stub.calls[6:] == [("uncond", n, 10**6 + k) for k, n in enumerate([2, 2, 1, 2, 2, 1])]  # as many
    assert stub.params["duration"] == 1.5 and stub.params["cfg_coef"] == 2.5
    report = json.loads(out_json.read_text())
    assert list(report["attributes"]) == ["sound_class"]  # no bpm / key asked: no tempo / key rows
    row = report["attributes"]["sound_class"]["metrics"]["accuracy"]
    assert report["attributes"]["sound_class"]["n"] == 10 and report["n_unconditional"] == 10
    # Every clip is what was asked; every noise clip meets the 4 noise requests of 10.
    assert row["conditional"] == 1.0 and row["unconditional"] == pytest.approx(0.4)
    assert row["margin"] == pytest.approx(0.6)
    assert [(i["id"], i["seed"]) for i in report["items"][4:6]] == [("p4", 0), ("p0", 1)]
    assert report["settings"]["seeds"] == 2 and report["classifiers"]["sound_class"]["val_accuracy"] >= 0.875
    assert "| sound_class | top-1 accuracy | 10 | 1.000 | 0.400 | +0.600 |" in printed
    assert out_md.read_text() == printed and "`sound_class` judge: a 2-class classifier" in printed
    assert main(args) == 2 and f"{out_json} already exists" in capsys.readouterr().err
    assert main(args + ["--force"]) == 0


def test_adherence_measures_tempo_and_key_of_music_prompts(stub, tmp_path):
    rows = [{"description": "100 bpm in D major", "bpm": 100, "key": "D major", "mode": "major"},
            {"description": "128 bpm in A minor", "bpm": 128, "key": "A minor", "mode": "minor"}]
    out = tmp_path / "m.json"
    assert main(["eval", "adherence", "stub", _prompts(tmp_path / "m.jsonl", rows), "--json", str(out), "-q"]) == 0
    report = json.loads(out.read_text())
    assert list(report["attributes"]) == ["tempo", "key"]
    tempo, key = report["attributes"]["tempo"]["metrics"], report["attributes"]["key"]["metrics"]
    assert tempo["acc1"]["conditional"] == 1.0 and tempo["acc1"]["unconditional"] == 0.0
    assert key["exact"]["conditional"] == 1.0 and key["exact"]["margin"] > 0.5
    assert stub.params["duration"] == 8.0  # the default


def test_prompts_of_classes_the_classifier_lacks_are_left_out(classifier, stub, tmp_path, capsys):
    rows = SOUND_PROMPTS[:2] + [{"description": "a chirp", "sound_class": "chirp"}]
    out = tmp_path / "l.json"
    assert main(["eval", "adherence", "stub", _prompts(tmp_path / "l.jsonl", rows), "--classifier",
                 f"sound_class={classifier[0]}", "--json", str(out), "-q"]) == 0
    report = json.loads(out.read_text())
    assert report["attributes"]["sound_class"]["n"] == 2 and report["left_out"] == {"sound_class": {"chirp": 1}}
    assert report["n_conditional"] == 3  # the chirp prompt is still generated (other attributes may use it)
    assert "1 prompts left out, their class is unknown to the classifier: chirp (1)" in capsys.readouterr().out


@pytest.mark.parametrize("rows, extra, message", [
    ([], [], "holds no prompts"),
    (None, [], "request file not found"),
    (SOUND_PROMPTS, ["--classifier", "instrument_family=CLF"],
     "was trained on 'sound_class' labels, not 'instrument_family': pass it as --classifier sound_class="),
    ([{"description": "x", "bpm": 90}], ["--classifier", "sound_class=CLF"],
     "no prompt in PROMPTS has a 'sound_class'"),
    ([{"description": "a dog", "sound_class": "dog"}], ["--classifier", "sound_class=CLF"],
     "labels (noise, sine) match none of the requested values (dog)"),
    (SOUND_PROMPTS, ["--classifier", "sound_class"], "--classifier takes ATTRIBUTE=FOLDER"),
    (SOUND_PROMPTS, ["--classifier", "sound_class=nowhere"], "classifier folder not found: nowhere"),
    ([{"description": "x", "bpm": 90}, {"id": "b", "description": "y", "bpm": -3}], [],
     "PROMPTS, prompt 2 (b): requested 'bpm' must be a positive number"),
    ([{"description": "x", "key": "H major"}], [], "cannot read key 'H major'"),
    ([{"id": "q1"}], [], "prompt 1: no \"description\""),
    ([{"description": "a dog"}], [], "asks for an attribute wavecraft can measure"),
    (SOUND_PROMPTS, ["--seeds", "0"], "--seeds and --batch-size must be at least 1"),
])
def test_adherence_bad_input_fails_before_loading_the_model(classifier, tmp_path, capsys, rows, extra, message):
    prompts = str(tmp_path / "p.jsonl") if rows is None else _prompts(tmp_path / "p.jsonl", rows)
    extra = [a.replace("CLF", str(classifier[0])) for a in extra]
    # A model that does not exist: every error above must come first (generation takes minutes).
    assert main(["eval", "adherence", "no-such-model", prompts, *extra, "-q"]) == 2
    err = capsys.readouterr().err
    assert message.replace("PROMPTS", prompts) in err and "no-such-model" not in err
    assert err.count("\n") == 1


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tinymg")
    model = tiny_hf_musicgen(folder, scale=1.0)  # flat enough logits for seeds to matter
    with torch.no_grad():  # transformers starts codebooks at zero: every code would decode alike
        for layer in model.audio_encoder.quantizer.layers:
            layer.codebook.embed.normal_()
            layer.codebook.embed_avg.copy_(layer.codebook.embed)
    model.save_pretrained(str(folder))
    return folder


def test_adherence_with_a_tiny_musicgen_is_batched_and_reproducible(tiny_model, classifier, tmp_path, capsys):
    rows = [{"id": f"m{i}", "description": d, "bpm": b, "key": k, "sound_class": c}
            for i, (d, b, k, c) in enumerate([("lofi beat with warm piano", 80, "C major", "sine"),
                                               ("heavy rock drums", 140, "E minor", "noise"),
                                               ("calm ambient pad", 70, "F major", "sine")])]
    prompts = _prompts(tmp_path / "p.jsonl", rows)
    reports, audio = [], []
    for run in range(2):
        out, clips = tmp_path / f"r{run}.json", tmp_path / f"wav{run}"
        assert main(["eval", "adherence", str(tiny_model), prompts, "--classifier", f"sound_class={classifier[0]}",
                     "--duration", "0.4", "--seeds", "2", "--batch-size", "2", "--device", "cpu",
                     "--json", str(out), "--save-audio", str(clips), "--threads", "1"]) == 0
        reports.append(json.loads(out.read_text()))
        audio.append({p.name: sf.read(p)[0] for p in sorted(clips.iterdir())})
    captured = capsys.readouterr()
    assert "conditional, seed 1: 3/3 clips" in captured.err and "unconditional, seed 1: 3/3 clips" in captured.err
    report = reports[0]
    assert report["n_conditional"] == report["n_unconditional"] == 6
    assert list(report["attributes"]) == ["tempo", "key", "sound_class"]
    assert [i["seed"] for i in report["items"]] == [0, 0, 0, 1, 1, 1]
    names = sorted(audio[0])
    assert names == [f"cond_{i:04d}.wav" for i in range(6)] + [f"uncond_{i:04d}.wav" for i in range(6)]
    assert all(a.shape == (160,) for a in audio[0].values())  # 0.4 s at the model's 400 Hz
    for name in names:  # fixed seeds: the same clips twice
        assert (audio[0][name] == audio[1][name]).all()
    assert not (audio[0]["cond_0000.wav"] == audio[0]["cond_0003.wav"]).all()  # another seed, another clip
    assert reports[0]["attributes"] == reports[1]["attributes"]


def test_adherence_of_a_quantised_model_is_recorded_as_such(tiny_model, classifier, tmp_path, capsys):
    prompts = _prompts(tmp_path / "p.jsonl", [{"id": "m0", "description": "lofi beat", "bpm": 80, "sound_class": "sine"}])
    out = tmp_path / "q.json"
    assert main(["eval", "adherence", str(tiny_model), prompts, "--classifier", f"sound_class={classifier[0]}",
                 "--duration", "0.4", "--device", "cpu", "--quantize", "int8", "--json", str(out), "-q"]) == 0
    assert json.loads(out.read_text())["settings"]["quantize"] == "int8"
    assert "int8 weights" in capsys.readouterr().out


def test_non_text_conditioners_get_the_prompt_field_of_their_name():
    from wavecraft.codec import Codec, CodecConfig
    from wavecraft.conditioners import LUTConditioner, LUTConditionerConfig
    from wavecraft.lm import LMConfig, LMModel
    from wavecraft.metrics.adherence_run import generate_clips
    from wavecraft.models.musicgen import MusicGen, MusicGenConfig

    torch.manual_seed(0)
    lm_cfg = LMConfig(n_q=4, card=64, dim=16, num_heads=2, num_layers=1, ffn_dim=32)
    genre = LUTConditioner(LUTConditionerConfig(vocab=["ambient", "electronic"], dim=4, output_dim=16))
    config = MusicGenConfig(lm=lm_cfg, conditioners={}, fuse={"genre": "cross"}, max_duration=0.5, extend_stride=0.25)
    model = MusicGen("tiny", config, LMModel(lm_cfg), Codec(CodecConfig.preset("tiny"), name="tiny"), {"genre": genre})
    model.set_generation_params(duration=0.1)
    seen = []
    condition = genre.condition
    genre.condition = lambda rows: seen.append(list(rows)) or condition(rows)
    rows = [{"description": "a", "genre": "ambient"}, {"description": "b", "genre": "electronic"}, {"description": "c"}]
    clips = generate_clips(model, rows, 3, 2, seed=0)
    assert len(clips) == 3 and clips[0].shape[0] == 1
    # Batches of 2 (+ their null halves): the genre rows come from the prompts, missing -> None.
    assert seen == [["ambient", "electronic", None, None], [None, None]]
