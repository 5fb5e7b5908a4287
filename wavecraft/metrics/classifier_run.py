"""Train an adherence classifier from dataset manifests and summarise how well it judges.

`classifier.py` holds the model and its training loop; this module is the file-level job behind
`wavecraft eval train-classifier`: read the labelled clips of one or more manifests (label = a
sidecar field such as `instrument_family` or `sound_class`), balance them, train on the train
split, measure on the held-out split, and describe the result in a few lines.

    model, report = train_from_manifests(["datasets/music/train/data.jsonl"], "instrument_family",
                                         val_manifests=["datasets/music/valid/data.jsonl"])
    print("\n".join(confusion_summary(report)))
"""
from __future__ import annotations

import logging
import random
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

from ..errors import WavecraftError
from .classifier import AudioClassifier, ClassifierConfig, items_from_manifest, train_classifier

logger = logging.getLogger(__name__)


def labelled_items(manifests: Sequence[str | Path], label_key: str) -> list[tuple[str, str]]:
    """(audio path, label) of every entry of `manifests` whose sidecar has `label_key`."""
    if not manifests:
        raise WavecraftError("give at least one manifest (data.jsonl) of labelled clips")
    items: list[tuple[str, str]] = []
    for manifest in manifests:
        items += items_from_manifest(manifest, label_key)
    missing = [path for path, _ in items if not Path(path).is_file()]
    if missing:  # found now, not after minutes of feature extraction
        raise WavecraftError(f"{len(missing)} audio files named by the manifests are missing, e.g. {missing[0]}")
    return items


def cap_per_class(items: Sequence[tuple[str, str]], max_per_class: int | None, seed: int) -> list[tuple[str, str]]:
    """At most `max_per_class` items of each label, drawn reproducibly from `seed`, in input order.

    Capping bounds the training time and keeps a dominant class (512 speech clips in the sound
    set) from swamping the rare ones.
    """
    if max_per_class is None:
        return list(items)
    if max_per_class < 1:
        raise WavecraftError(f"--max-per-class must be at least 1, got {max_per_class}")
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, (_, label) in enumerate(items):
        by_label[label].append(i)
    rng = random.Random(seed)
    keep: set[int] = set()
    for label in sorted(by_label):
        idx = by_label[label]
        keep.update(idx if len(idx) <= max_per_class else rng.sample(idx, max_per_class))
    return [items[i] for i in sorted(keep)]


def train_from_manifests(
    train_manifests: Sequence[str | Path],
    label_key: str,
    val_manifests: Sequence[str | Path] | None = None,
    *,
    max_per_class: int | None = None,
    val_max_per_class: int | None = None,
    seconds: float = 10.0,
    epochs: int = 30,
    seed: int = 0,
    config: ClassifierConfig | None = None,
    max_train_seconds: float | None = None,
    num_threads: int | None = 1,
    log_every: int = 0,
) -> tuple[AudioClassifier, dict[str, Any]]:
    """Train on the labelled clips of `train_manifests`; measure on `val_manifests` (else on a
    stratified 20 % of the training clips held out). `seconds` caps the audio read per clip.

    Held-out labels never seen in training are dropped (with a warning): the classifier could
    not predict them, so they would only measure the label sets' difference.
    """
    if epochs < 1:
        raise WavecraftError(f"--epochs must be at least 1, got {epochs}")
    if not seconds > 0:
        raise WavecraftError(f"--seconds must be positive, got {seconds}")
    train_items = cap_per_class(labelled_items(train_manifests, label_key), max_per_class, seed)
    classes = {label for _, label in train_items}
    if len(classes) < 2:
        raise WavecraftError(f"the training clips have only {len(classes)} distinct {label_key!r} value(s) "
                             f"({', '.join(sorted(classes))}); a classifier needs at least two")
    val_items = None
    if val_manifests:
        val_items = cap_per_class(labelled_items(val_manifests, label_key), val_max_per_class, seed)
        unseen = sorted({label for _, label in val_items} - classes)
        if unseen:
            logger.warning("held-out labels without training clips are left out: %s", ", ".join(unseen))
            val_items = [item for item in val_items if item[1] in classes]
        if not val_items:
            raise WavecraftError("no held-out clip has a label the training clips have")
    try:
        model, report = train_classifier(train_items, config, label_key=label_key, val_data=val_items, epochs=epochs,
                                         max_clip_seconds=seconds, seed=seed, max_train_seconds=max_train_seconds,
                                         num_threads=num_threads, log_every=log_every)
    except ValueError as err:
        raise WavecraftError(str(err)) from None
    report.update(train_manifests=[str(m) for m in train_manifests],
                  val_manifests=[str(m) for m in val_manifests or []],
                  max_per_class=max_per_class, seconds_per_clip=seconds)
    model.training_report = report
    return model, report


def per_class_accuracy(report: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """label -> (correct, held-out clips) from the report's confusion matrix (labels without
    held-out clips are left out)."""
    out = {}
    for i, (label, row) in enumerate(zip(report["labels"], report["val_confusion"])):
        if sum(row):
            out[label] = (row[i], sum(row))
    return out


def top_confusions(report: dict[str, Any], most: int = 5) -> list[tuple[str, str, int]]:
    """The `most` largest off-diagonal cells: (true label, predicted label, clips)."""
    labels, confusion = report["labels"], report["val_confusion"]
    cells = [(labels[t], labels[p], n) for t, row in enumerate(confusion) for p, n in enumerate(row) if t != p and n]
    return sorted(cells, key=lambda c: (-c[2], c[0], c[1]))[:most]


def confusion_summary(report: dict[str, Any], most: int = 5) -> list[str]:
    """Human-readable lines: accuracies, per-class accuracy, the commonest confusions."""
    chance = report.get("chance_accuracy")
    lines = [
        f"{report['label_key']}: {len(report['labels'])} classes, {report['n_train']} training clips, "
        f"{report['n_val']} held-out clips, {report['epochs']} epochs in {report['seconds']:.0f} s"
        + (" (stopped on the time budget)" if report.get("stopped_early") else ""),
        f"held-out accuracy {report['val_accuracy']:.3f}"
        + (f" (chance: {chance:.3f}, always the commonest class)" if chance is not None else "")
        + f"; training accuracy {report['train_accuracy']:.3f}",
        "per class (correct / held-out): " + ", ".join(
            f"{label} {c}/{n}" for label, (c, n) in per_class_accuracy(report).items()),
    ]
    confusions = top_confusions(report, most)
    if confusions:
        lines.append("commonest confusions (true -> predicted): "
                     + ", ".join(f"{t} -> {p} ({n})" for t, p, n in confusions))
    return lines
