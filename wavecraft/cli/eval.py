"""`wavecraft eval codec|lm|melody|train-classifier|adherence`: objective metrics and adherence tables."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval", help="measure a codec or a generation model; train adherence classifiers",
        description="codec: SI-SNR, mel and STFT distances of the reconstruction. lm: per-codebook "
                    "cross-entropy and perplexity. melody: chroma cosine similarity of melody-conditioned output "
                    "(and of the same caption without the melody, the baseline). "
                    "train-classifier: train the small audio classifier that judges instrument family / sound "
                    "class. adherence: prompt adherence (tempo, key, classifier labels) of a model against its "
                    "own unconditional output. See docs/evaluation.md.",
    )
    sub = p.add_subparsers(dest="what", metavar="WHAT", required=True)
    for what, help_text in (("codec", "reconstruction metrics of a codec"),
                            ("lm", "cross-entropy / perplexity of a MusicGen on a manifest"),
                            ("melody", "chroma similarity of melody-conditioned generations")):
        _register_manifest_eval(sub, what, help_text)
    _register_train_classifier(sub)
    _register_adherence(sub)


# -- codec / lm / melody ------------------------------------------------------------------------------
def _register_manifest_eval(sub: argparse._SubParsersAction, what: str, help_text: str) -> None:
    p = sub.add_parser(what, help=help_text, description=help_text)
    p.add_argument("model", help="codec (for codec) or MusicGen model (for lm/melody): a folder or a name")
    p.add_argument("manifest", help="data.jsonl[.gz] of the evaluation files")
    p.add_argument("--max-files", type=int, default=None, help="evaluate only the first N files")
    p.add_argument("--seconds", type=float, default=None,
                   help="seconds per file (codec: first 10 s by default; lm: the model's window; melody: 8 s)")
    p.add_argument("--bandwidth", type=float, default=None, help="codec: bitrate in kbps (default: all codebooks)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    p.set_defaults(func=_run_manifest_eval)


def _run_manifest_eval(args: argparse.Namespace) -> int:
    from wavecraft.metrics import evaluate

    _refuse_existing([args.json], force=False)
    if args.what == "codec":
        from wavecraft.codec import load_codec

        codec = load_codec(args.model, device=args.device)
        if args.bandwidth is not None:
            codec.set_bandwidth(args.bandwidth)
        result = evaluate.evaluate_codec(codec, args.manifest, args.max_files, args.seconds or 10.0, progress=True)
    else:
        from wavecraft.models.musicgen import MusicGen

        model = MusicGen.get_pretrained(args.model, device=args.device)
        if args.what == "lm":
            result = evaluate.evaluate_lm(model, args.manifest, args.max_files, args.seconds, progress=True)
        else:
            result = evaluate.evaluate_melody(model, args.manifest, args.max_files, args.seconds or 8.0, progress=True)
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value:.4f}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    if args.json:
        _write(args.json, json.dumps(result, indent=2) + "\n")
    return 0


# -- train-classifier -----------------------------------------------------------------------------------
def _register_train_classifier(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train-classifier", help="train the audio classifier that judges a label (instrument family, sound class)",
        description="Train the small log-mel CNN of wavecraft.metrics.classifier on the clips of MANIFEST(s), "
                    "labelled by their sidecar JSON field --label, report its accuracy on the held-out clips "
                    "(--val manifests; else 20 % of the training clips) and save it to -o FOLDER. About 0.13 s "
                    "per 32-clip step on one CPU core: ~800 clips x 20 epochs take 3-4 minutes.",
    )
    p.add_argument("manifests", nargs="+", metavar="MANIFEST", help="data.jsonl of the training clips (train split)")
    p.add_argument("--label", required=True, metavar="FIELD",
                   help="sidecar field holding the class, e.g. instrument_family or sound_class")
    p.add_argument("-o", "--output", required=True, metavar="FOLDER", help="folder to save the classifier to")
    p.add_argument("--val", action="append", default=[], metavar="MANIFEST",
                   help="held-out clips to measure accuracy on (repeatable: e.g. the valid and eval splits)")
    p.add_argument("--epochs", type=int, default=20, help="passes over the training clips (default 20)")
    p.add_argument("--seconds", type=float, default=10.0, help="seconds read from each clip (default 10)")
    p.add_argument("--max-per-class", type=int, default=None, metavar="N",
                   help="use at most N training clips per class (bounds time, evens out classes; default all)")
    p.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                   help="stop training after the epoch that passes this many seconds (default: no limit)")
    p.add_argument("--seed", type=int, default=0, help="seed for the clip selection, crops and initialisation")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: small convolutions gain little)")
    p.add_argument("--json", metavar="FILE", help="also write the training report as JSON to FILE")
    p.add_argument("-f", "--force", action="store_true", help="overwrite an existing classifier folder / JSON file")
    p.set_defaults(func=_run_train_classifier)


def _run_train_classifier(args: argparse.Namespace) -> int:
    import logging

    from wavecraft.errors import WavecraftError
    from wavecraft.metrics.classifier_run import confusion_summary, train_from_manifests

    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise WavecraftError(f"-o {out} is a file; give a folder for the classifier")
    if out.is_dir() and any(out.iterdir()) and not args.force:  # checked before minutes of training
        raise WavecraftError(f"{out} exists and is not empty; choose another -o folder or pass --force")
    _refuse_existing([args.json], args.force)
    # Epoch losses and left-out entries go to stderr while training runs (minutes).
    log = logging.getLogger("wavecraft.metrics")
    handler, level = logging.StreamHandler(sys.stderr), log.level
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        model, report = train_from_manifests(
            args.manifests, args.label, args.val or None, max_per_class=args.max_per_class, seconds=args.seconds,
            epochs=args.epochs, seed=args.seed, max_train_seconds=args.time_budget, num_threads=args.threads,
            log_every=5,
        )
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    model.save(out, overwrite=True)
    print("\n".join(confusion_summary(report)))
    print(f"saved to {out}")
    if args.json:
        _write(args.json, json.dumps(report, indent=2) + "\n")
    return 0


# -- adherence ------------------------------------------------------------------------------------------
def _register_adherence(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "adherence", help="prompt adherence of a model vs its unconditional output",
        description="Generate one clip per held-out prompt (and seed) with MODEL, and as many unconditional "
                    "clips, then measure each requested attribute the prompts carry: tempo (bpm) by beat "
                    "tracking, key/mode by chroma key estimation, and any --classifier ATTRIBUTE=FOLDER label. "
                    "Prints a Markdown table: conditional, unconditional baseline (every request against every "
                    "unconditional clip) and their margin.",
    )
    p.add_argument("model", help="model: a bundled name or a folder (anything `wavecraft generate -m` takes)")
    p.add_argument("prompts", help="prompts JSONL: one JSON object per line, with description + attributes")
    p.add_argument("--classifier", action="append", default=[], metavar="ATTRIBUTE=FOLDER",
                   help="judge ATTRIBUTE with a classifier from `wavecraft eval train-classifier` (repeatable)")
    p.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                   help="seconds per clip (default 8, at most the model's window)")
    p.add_argument("--seeds", type=int, default=1, metavar="N", help="clips per prompt, one per seed (default 1)")
    p.add_argument("--max-prompts", type=int, default=None, metavar="N", help="use only the first N prompts")
    p.add_argument("--batch-size", type=int, default=8, help="prompts per generation call (default 8)")
    p.add_argument("--cfg", type=float, default=3.0, metavar="COEF", help="classifier-free guidance (default 3.0)")
    p.add_argument("--top-k", type=int, default=250, help="top-k sampling (default 250, as generate)")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default 1.0)")
    p.add_argument("--seed", type=int, default=0, help="base seed; the same seed and batch size reproduce the table")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch threads for generation (default: torch's)")
    p.add_argument("--quantize", choices=("int8", "int4"), default=None,
                   help="weight-only quantised LM (CPU): measures what quantisation costs in adherence")
    p.add_argument("--json", metavar="FILE", help="write the full report (settings, scores, per-clip estimates)")
    p.add_argument("--markdown", metavar="FILE", help="write the table with its settings line, for a model card")
    p.add_argument("--save-audio", metavar="DIR", help="keep the generated clips (cond_N.wav, uncond_N.wav)")
    p.add_argument("-f", "--force", action="store_true", help="overwrite existing --json/--markdown/--save-audio")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_run_adherence)


def _run_adherence(args: argparse.Namespace) -> int:
    import torch

    from wavecraft.errors import WavecraftError
    from wavecraft.metrics import adherence_run as ar
    from wavecraft.metrics.classifier import limit_threads
    from wavecraft.models.loaders.auto import load_model

    # Everything that can be wrong is checked before generation, which takes minutes.
    settings = ar.AdherenceSettings(duration=8.0 if args.duration is None else args.duration, seeds=args.seeds,
                                    batch_size=args.batch_size, cfg=args.cfg, top_k=args.top_k,
                                    temperature=args.temperature, seed=args.seed, quantize=args.quantize)
    settings.check()
    _refuse_existing([args.json, args.markdown], args.force)
    audio_dir = Path(args.save_audio) if args.save_audio else None
    if audio_dir is not None and audio_dir.exists() and (not audio_dir.is_dir() or any(audio_dir.iterdir())):
        if not args.force or not audio_dir.is_dir():
            raise WavecraftError(f"--save-audio {audio_dir} exists and is not an empty folder; "
                                 f"choose another or pass --force")
    requests = ar.load_prompts(args.prompts, args.max_prompts)
    classifiers = ar.load_classifiers(args.classifier)
    estimators, left_out = ar.select_estimators(requests, {a: c for a, (c, _) in classifiers.items()}, args.prompts)
    model = load_model(args.model)
    model.to(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.quantize is not None:
        model.quantize(args.quantize)
    if args.duration is None:  # 8 s: long enough for beat tracking, short enough for a CPU
        settings.duration = min(settings.duration, model.max_duration)
    say = None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    with limit_threads(args.threads):
        report = ar.run_adherence(model, requests, estimators, settings, save_audio=audio_dir, progress=say)
    report = ar.annotate(report, args.prompts, classifiers, left_out)
    document = ar.adherence_document(report)
    print(document, end="")
    if args.json:
        _write(args.json, json.dumps(report, indent=2) + "\n")
    if args.markdown:
        _write(args.markdown, document)
    return 0


def _refuse_existing(paths: list[Any], force: bool) -> None:
    from wavecraft.errors import WavecraftError

    for path in paths:
        if path and Path(path).is_dir():
            raise WavecraftError(f"{path} is a folder; give a file name")
        if path and Path(path).exists() and not force:
            raise WavecraftError(f"{path} already exists; choose another file or pass --force")


def _write(path: str, text: str) -> None:
    path_ = Path(path)
    path_.parent.mkdir(parents=True, exist_ok=True)
    path_.write_text(text, encoding="utf-8")
