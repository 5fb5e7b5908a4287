"""Prompt adherence: does generated audio have the attributes its prompt asked for?

Each attribute has an *estimator* that reads the attribute off audio (tempo, key, a classifier's
label) and scores its reading against the requested value. `adherence_report` runs them over
clips generated from prompts and, for the baseline, over clips the same model generated with no
prompt: there the requested attributes are compared with every unconditional clip (all pairs), so
the baseline is the agreement expected by chance given what the model produces anyway, without
the noise of one arbitrary pairing. The margin between the two is the adherence the prompt buys.

    requests = load_requests("datasets/music/eval/prompts.jsonl")
    report = adherence_report(requests, cond_wavs, 32000, default_estimators(family_clf),
                              unconditional=uncond_wavs)
    print(adherence_markdown(report))
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Protocol, Sequence, runtime_checkable

import torch

from ..errors import WavecraftError
from .classifier import AudioClassifier, limit_threads
from .key import Key, estimate_key, mirex_key_score, parse_key
from .tempo import ACC_TOLERANCE, estimate_tempo, tempo_accuracy1, tempo_accuracy2

# How the Markdown table names each metric.
METRIC_LABELS = {
    "acc1": "accuracy (within 4 %)",
    "acc2": "accuracy, x2 / x3 errors allowed",
    "mirex": "MIREX key score",
    "exact": "exact key",
    "mode": "mode (major/minor)",
    "tonic": "tonic",
    "accuracy": "top-1 accuracy",
    "p_requested": "mean p(requested)",
}


@runtime_checkable
class Estimator(Protocol):
    """What `adherence_report` needs from an attribute estimator."""

    name: str  # row name in the report, unique within one report
    attribute: str  # key in the request dicts
    metrics: tuple[str, ...]  # names of the values `score` returns, headline first

    def target(self, request: dict[str, Any]) -> Any | None:
        """The requested value, validated; None when this request does not ask for the attribute."""

    def estimate(self, wav: torch.Tensor, sample_rate: int) -> Any:
        """Read the attribute off one clip [C, T] or [T]."""

    def score(self, estimate: Any, target: Any) -> dict[str, float]:
        """Agreement between an estimate and a requested value, one number per metric."""

    def describe(self, estimate: Any) -> Any:
        """A JSON-able form of an estimate, for the per-item listing."""


class TempoEstimator:
    """Global tempo against the requested `bpm`: MIREX accuracy 1 and accuracy 2."""

    metrics = ("acc1", "acc2")

    def __init__(self, attribute: str = "bpm", name: str = "tempo", tolerance: float = ACC_TOLERANCE) -> None:
        self.attribute, self.name, self.tolerance = attribute, name, tolerance

    def target(self, request: dict[str, Any]) -> float | None:
        value = request.get(self.attribute)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or not math.isfinite(value):
            raise ValueError(f"requested {self.attribute!r} must be a positive number of bpm, got {value!r}")
        return float(value)

    def estimate(self, wav: torch.Tensor, sample_rate: int) -> float:
        return estimate_tempo(wav, sample_rate)

    def score(self, estimate: float, target: float) -> dict[str, float]:
        return {"acc1": float(tempo_accuracy1(estimate, target, self.tolerance)),
                "acc2": float(tempo_accuracy2(estimate, target, self.tolerance))}

    def describe(self, estimate: float) -> float | None:
        return None if math.isnan(estimate) else round(estimate, 1)


class KeyEstimator:
    """Key and mode against the requested `key` (a mode word inside it, or in `mode_attribute`)."""

    metrics = ("mirex", "exact", "mode", "tonic")

    def __init__(self, attribute: str = "key", mode_attribute: str = "mode", name: str = "key",
                 profile: str = "temperley") -> None:
        self.attribute, self.mode_attribute, self.name, self.profile = attribute, mode_attribute, name, profile

    def target(self, request: dict[str, Any]) -> Key | None:
        value = request.get(self.attribute)
        if value is None:
            return None
        return parse_key(value, request.get(self.mode_attribute))

    def estimate(self, wav: torch.Tensor, sample_rate: int) -> Key | None:
        return estimate_key(wav, sample_rate, self.profile)

    def score(self, estimate: Key | None, target: Key) -> dict[str, float]:
        if estimate is None:  # no pitched content: nothing agrees
            return {"mirex": 0.0, "exact": 0.0, "mode": 0.0, "tonic": 0.0}
        return {"mirex": mirex_key_score(estimate, target), "exact": float(estimate == target),
                "mode": float(estimate.mode == target.mode), "tonic": float(estimate.tonic == target.tonic)}

    def describe(self, estimate: Key | None) -> str | None:
        return None if estimate is None else estimate.name


class ClassifierEstimator:
    """A trained `AudioClassifier`'s label against a requested class (instrument family, sound class)."""

    metrics = ("accuracy", "p_requested")

    def __init__(self, classifier: AudioClassifier, attribute: str, name: str | None = None) -> None:
        self.classifier = classifier.eval()
        self.attribute, self.name = attribute, name or attribute
        self.index = {label: i for i, label in enumerate(classifier.labels)}

    def target(self, request: dict[str, Any]) -> int | None:
        value = request.get(self.attribute)
        if value is None:
            return None
        if str(value) not in self.index:
            raise ValueError(f"requested {self.attribute} {value!r} is not a class of the {self.name} classifier "
                             f"(classes: {', '.join(self.classifier.labels)}); retrain it with that class or "
                             f"drop those requests")
        return self.index[str(value)]

    def estimate(self, wav: torch.Tensor, sample_rate: int) -> torch.Tensor:
        return self.classifier.predict_proba(wav, sample_rate)

    def score(self, estimate: torch.Tensor, target: int) -> dict[str, float]:
        return {"accuracy": float(int(estimate.argmax()) == target), "p_requested": float(estimate[target])}

    def describe(self, estimate: torch.Tensor) -> str:
        return self.classifier.labels[int(estimate.argmax())]


def default_estimators(instrument_classifier: AudioClassifier | None = None,
                       sound_classifier: AudioClassifier | None = None) -> list[Estimator]:
    """Tempo and key, plus `instrument_family` / `sound_class` when a classifier is given."""
    out: list[Estimator] = [TempoEstimator(), KeyEstimator()]
    if instrument_classifier is not None:
        out.append(ClassifierEstimator(instrument_classifier, "instrument_family"))
    if sound_classifier is not None:
        out.append(ClassifierEstimator(sound_classifier, "sound_class"))
    return out


def load_requests(path: str | Path) -> list[dict[str, Any]]:
    """Request dicts from a JSONL file (e.g. the data builder's `eval/prompts.jsonl`)."""
    path = Path(path)
    if not path.is_file():
        raise WavecraftError(f"request file not found: {path}")
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as err:
            raise WavecraftError(f"{path}, line {n}: not valid JSON ({err.msg})") from None
        if not isinstance(item, dict):
            raise WavecraftError(f"{path}, line {n}: each line must be a JSON object")
        out.append(item)
    return out


def _clips(audio: Sequence[torch.Tensor] | torch.Tensor, what: str) -> list[torch.Tensor]:
    clips = list(audio.unbind(0)) if isinstance(audio, torch.Tensor) else list(audio)
    for i, wav in enumerate(clips):
        if not isinstance(wav, torch.Tensor) or wav.dim() not in (1, 2) or wav.shape[-1] == 0:
            shape = tuple(wav.shape) if isinstance(wav, torch.Tensor) else type(wav).__name__
            raise ValueError(f"{what} clip {i} must be a non-empty tensor [C, T] or [T], got {shape}")
    return clips


def _mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and its standard error (0 for a single value)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2 or max(values) - min(values) <= 1e-12 * max(1.0, abs(mean)):
        return mean, 0.0  # equal values: exactly 0, not the rounding noise of the sum
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def adherence_report(
    requested: Sequence[dict[str, Any]],
    audio: Sequence[torch.Tensor] | torch.Tensor,
    sample_rate: int,
    estimators: Sequence[Estimator],
    unconditional: Sequence[torch.Tensor] | torch.Tensor | None = None,
    unconditional_sample_rate: int | None = None,
    num_threads: int | None = 1,
) -> dict[str, Any]:
    """Score clips generated from `requested` (one clip per request, same order) on each estimator.

    With `unconditional` clips the same scores are computed for the baseline: every request that
    asks for an attribute is compared with every unconditional clip, and the clip-level means give
    the mean and standard error. Requests without an attribute are left out of that attribute.
    Returns a JSON-able dict; `adherence_markdown` renders it.
    """
    requested = list(requested)
    clips = _clips(audio, "generated")
    if len(clips) != len(requested):
        raise ValueError(f"adherence_report: {len(clips)} generated clips for {len(requested)} requests; "
                         f"pass one clip per request, in the same order")
    if sample_rate <= 0:
        raise ValueError(f"adherence_report: sample_rate must be positive, got {sample_rate}")
    uncond = None if unconditional is None else _clips(unconditional, "unconditional")
    if uncond is not None and not uncond:
        raise ValueError("adherence_report: `unconditional` is empty; pass None to skip the baseline")
    uncond_sr = unconditional_sample_rate or sample_rate
    names = [e.name for e in estimators]
    if len(set(names)) != len(names):
        raise ValueError(f"adherence_report: estimator names must be unique, got {names}")

    items: list[dict[str, Any]] = [{"index": i, "requested": {}, "estimated": {}} for i in range(len(clips))]
    uncond_items: list[dict[str, Any]] = [{"index": j, "estimated": {}} for j in range(len(uncond or []))]
    attributes: dict[str, Any] = {}
    with limit_threads(num_threads):
        for est in estimators:
            targets = {}
            for i, request in enumerate(requested):
                try:
                    t = est.target(request)
                except ValueError as err:
                    raise ValueError(f"request {i}: {err}") from None
                if t is not None:
                    targets[i] = t
            entry: dict[str, Any] = {"attribute": est.attribute, "n": len(targets), "metrics": {}}
            attributes[est.name] = entry
            if not targets:
                continue
            cond_scores: dict[str, list[float]] = {m: [] for m in est.metrics}
            for i, t in targets.items():
                e = est.estimate(clips[i], sample_rate)
                items[i]["requested"][est.name] = requested[i][est.attribute]
                items[i]["estimated"][est.name] = est.describe(e)
                for m, v in est.score(e, t).items():
                    cond_scores[m].append(v)
            uncond_scores: dict[str, list[float]] = {m: [] for m in est.metrics}
            for j, wav in enumerate(uncond or []):
                e = est.estimate(wav, uncond_sr)
                uncond_items[j]["estimated"][est.name] = est.describe(e)
                sums = {m: 0.0 for m in est.metrics}
                for t in targets.values():
                    for m, v in est.score(e, t).items():
                        sums[m] += v
                for m in est.metrics:
                    uncond_scores[m].append(sums[m] / len(targets))
            for m in est.metrics:
                c_mean, c_se = _mean_se(cond_scores[m])
                row: dict[str, Any] = {"conditional": c_mean, "conditional_se": c_se}
                if uncond:
                    u_mean, u_se = _mean_se(uncond_scores[m])
                    row.update(unconditional=u_mean, unconditional_se=u_se, margin=c_mean - u_mean)
                entry["metrics"][m] = row
    return {"n_conditional": len(clips), "n_unconditional": len(uncond or []), "sample_rate": sample_rate,
            "attributes": attributes, "items": items, "unconditional_items": uncond_items}


def _fmt(mean: float | None, se: float | None) -> str:
    if mean is None:
        return "n/a"
    return f"{mean:.3f} ± {se:.3f}" if se else f"{mean:.3f}"


def adherence_rows(report: dict[str, Any]) -> list[str]:
    """One Markdown table row per (attribute, metric): attribute, metric, n, conditional,
    unconditional, margin (values as mean ± standard error)."""
    rows = []
    for name, entry in report["attributes"].items():
        label = f"{name} (`{entry['attribute']}`)" if entry["attribute"] != name else name
        if not entry["metrics"]:
            rows.append(f"| {label} | no request asks for it | 0 | n/a | n/a | n/a |")
            continue
        for metric, row in entry["metrics"].items():
            margin = row.get("margin")
            rows.append(
                f"| {label} | {METRIC_LABELS.get(metric, metric)} | {entry['n']} | "
                f"{_fmt(row['conditional'], row['conditional_se'])} | "
                f"{_fmt(row.get('unconditional'), row.get('unconditional_se'))} | "
                f"{'n/a' if margin is None else f'{margin:+.3f}'} |"
            )
    return rows


def adherence_markdown(report: dict[str, Any]) -> str:
    """The full table: header, separator and `adherence_rows`."""
    header = ["| attribute | metric | n | conditional | unconditional | margin |",
              "|---|---|---:|---:|---:|---:|"]
    return "\n".join(header + adherence_rows(report)) + "\n"
