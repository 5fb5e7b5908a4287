"""Run a prompt-adherence evaluation end to end: prompts -> generated clips -> scored report.

`adherence.py` scores clips it is given; this module is the job behind `wavecraft eval
adherence`: read held-out prompts, pick the estimators that apply to them, generate one clip per
prompt and seed (batched, fixed seeds) and as many unconditional clips from the same model, and
put the settings next to the scores so that a model card's table can be reproduced.

    requests = load_prompts("datasets/music/eval/prompts.jsonl")
    estimators = select_estimators(requests, {"instrument_family": load_classifier("clf/family")})
    report = run_adherence(model, requests, estimators, AdherenceSettings(duration=8.0))
    print(adherence_document(report))
"""
from __future__ import annotations

import dataclasses
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ..errors import WavecraftError
from .adherence import (ClassifierEstimator, Estimator, adherence_markdown, adherence_report, default_estimators,
                        load_requests)
from .classifier import AudioClassifier, load_classifier

# Unconditional batches draw their seeds this far from the conditional ones, so that no
# unconditional clip shares its random stream with a conditional clip (which would correlate
# the baseline with the clips it is compared against).
UNCONDITIONAL_SEED_OFFSET = 1_000_000


@dataclasses.dataclass
class AdherenceSettings:
    """How the clips are generated; everything here is recorded in the report."""

    duration: float = 8.0  # seconds per clip
    seeds: int = 1  # clips per prompt, each from its own seed
    batch_size: int = 8  # prompts per `generate` call
    cfg: float = 3.0  # classifier-free guidance coefficient (conditional clips only)
    top_k: int = 250
    temperature: float = 1.0
    seed: int = 0  # base seed: batch k of the conditional pass uses seed + k
    quantize: str | None = None  # "int8" / "int4" when the LM's weights were quantised (recorded only)

    def check(self) -> None:
        if not self.duration > 0:
            raise WavecraftError(f"--duration must be positive, got {self.duration}")
        if self.seeds < 1 or self.batch_size < 1:
            raise WavecraftError(f"--seeds and --batch-size must be at least 1, got {self.seeds}, {self.batch_size}")
        if self.cfg < 0 or self.top_k < 0 or not self.temperature > 0:
            raise WavecraftError("--cfg and --top-k must be >= 0 and --temperature > 0")


def load_prompts(path: str | Path, max_prompts: int | None = None) -> list[dict[str, Any]]:
    """The request dicts of a prompts JSONL file (the first `max_prompts` when given); each needs a
    text (`description`, or attribute fields a caption can be made of)."""
    from ..data.captions import plain_caption

    if max_prompts is not None and max_prompts < 1:
        raise WavecraftError(f"--max-prompts must be at least 1, got {max_prompts}")
    requests = load_requests(path)
    if not requests:
        raise WavecraftError(f"{path} holds no prompts (one JSON object per line, with a \"description\")")
    requests = requests[:max_prompts] if max_prompts else requests
    for n, request in enumerate(requests, start=1):
        if plain_caption(request) is None:
            raise WavecraftError(f"{path}, prompt {n}: no \"description\" (nor caption fields) to generate from")
    return requests


class _KnownClassEstimator(ClassifierEstimator):
    """A classifier estimator that leaves out requests for classes its classifier does not know
    (rare classes missing from its training clips) instead of failing the whole run."""

    def target(self, request: dict[str, Any]) -> int | None:
        value = request.get(self.attribute)
        return None if value is None or str(value) not in self.index else self.index[str(value)]


def load_classifiers(specs: Sequence[str]) -> dict[str, tuple[AudioClassifier, str]]:
    """'ATTR=FOLDER' strings -> {attribute: (classifier, folder)}, each checked against its attribute."""
    out: dict[str, tuple[AudioClassifier, str]] = {}
    for spec in specs:
        attr, sep, folder = spec.partition("=")
        attr, folder = attr.strip(), folder.strip()
        if not sep or not attr or not folder:
            raise WavecraftError(f"--classifier takes ATTRIBUTE=FOLDER (e.g. instrument_family=clf/family), "
                                 f"got {spec!r}")
        if attr in out:
            raise WavecraftError(f"--classifier {attr}= is given twice")
        if not Path(folder).is_dir():
            raise WavecraftError(f"classifier folder not found: {folder} "
                                 f"(train one with `wavecraft eval train-classifier`)")
        clf = load_classifier(folder)
        trained_on = (clf.training_report or {}).get("label_key")
        if trained_on is not None and trained_on != attr:
            raise WavecraftError(f"classifier {folder} was trained on {trained_on!r} labels, not {attr!r}: "
                                 f"pass it as --classifier {trained_on}={folder}")
        out[attr] = (clf, folder)
    return out


def select_estimators(requests: Sequence[dict[str, Any]], classifiers: dict[str, AudioClassifier],
                      source: str = "prompts") -> tuple[list[Estimator], dict[str, dict[str, int]]]:
    """The estimators that apply to `requests`, validated on every request before anything is
    generated; plus {attribute: {class: requests}} left out because a classifier lacks the class.

    Tempo and key are used when some request asks for them (sound prompts have no bpm); each
    classifier must match an attribute the prompts carry and know at least one requested class.
    """
    estimators: list[Estimator] = [e for e in default_estimators()
                                   if any(r.get(e.attribute) is not None for r in requests)]
    left_out: dict[str, dict[str, int]] = {}
    for attr, clf in classifiers.items():
        values = Counter(str(r[attr]) for r in requests if r.get(attr) is not None)
        if not values:
            raise WavecraftError(f"no prompt in {source} has a {attr!r} field; drop --classifier {attr}=... "
                                 f"or use prompts that ask for it")
        unknown = {v: n for v, n in sorted(values.items()) if v not in clf.labels}
        if len(unknown) == len(values):
            raise WavecraftError(f"the {attr} classifier's labels ({_some(clf.labels)}) match none of the "
                                 f"requested values ({_some(sorted(values))}); was it trained on {attr!r}?")
        if unknown:
            left_out[attr] = unknown
        estimators.append(_KnownClassEstimator(clf, attr))
    if not estimators:
        raise WavecraftError(f"no prompt in {source} asks for an attribute wavecraft can measure "
                             f"(bpm, key, or a --classifier ATTRIBUTE=FOLDER)")
    for est in estimators:
        for n, request in enumerate(requests, start=1):
            try:
                est.target(request)
            except ValueError as err:
                where = f" ({request['id']})" if "id" in request else ""
                raise WavecraftError(f"{source}, prompt {n}{where}: {err}") from None
    return estimators, left_out


def _some(names: Sequence[str], most: int = 8) -> str:
    """'a, b, c' or 'a, b, ... (54 in all)': an error message stays one readable line."""
    names = list(names)
    return ", ".join(names) if len(names) <= most else f"{', '.join(names[:most])}, ... ({len(names)} in all)"


def _extra_attributes(model: Any, requests: Sequence[dict[str, Any]]) -> dict[str, list[Any]] | None:
    """Rows for the model's non-text, non-melody conditioners (e.g. a genre lookup table), read
    from the requests' fields of the same name, as in training (None when the model has none)."""
    from ..models.components import TEXT_TYPES, conditioner_type

    out = {attr: [r.get(attr) for r in requests] for attr, cond in model.conditioners.items()
           if conditioner_type(cond) not in TEXT_TYPES and conditioner_type(cond) != "chroma"}
    return out or None


@torch.no_grad()
def generate_clips(model: Any, requests: Sequence[dict[str, Any]] | None, count: int, batch_size: int,
                   seed: int, progress: Callable[[int, int], None] | None = None) -> list[torch.Tensor]:
    """`count` clips [C, T] on the CPU: from `requests` (one each; None: unconditional), `batch_size`
    per generation call, call k seeded with `seed + k` (so a clip depends on the batch size too)."""
    from ..data.captions import plain_caption

    clips: list[torch.Tensor] = []
    for k, start in enumerate(range(0, count, batch_size)):
        n = min(batch_size, count - start)
        if requests is None:
            wav = model.generate_unconditional(n, seed=seed + k)
        else:
            rows = list(requests[start:start + n])
            attributes = _extra_attributes(model, rows)
            texts = [plain_caption(r) for r in rows]
            if attributes is None:
                wav = model.generate(texts, seed=seed + k)
            else:
                wav = model.codec.decode(model.generate_tokens(texts, attributes=attributes, seed=seed + k)).float()
        clips += list(wav.cpu().unbind(0))
        if progress is not None:
            progress(len(clips), count)
    return clips


def run_adherence(model: Any, requests: Sequence[dict[str, Any]], estimators: Sequence[Estimator],
                  settings: AdherenceSettings, *, save_audio: str | Path | None = None,
                  progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Generate `settings.seeds` clips per request and as many unconditional ones, score both.

    Returns `adherence_report`'s dict plus "settings" and, per item, the prompt's id and text and
    its seed number. The baseline pairs every request with every unconditional clip (see
    `adherence_report`), so it is the score the model gets without being asked.
    """
    from ..data.captions import plain_caption

    settings.check()
    say = progress or (lambda _msg: None)
    model.set_generation_params(duration=settings.duration, cfg_coef=settings.cfg, top_k=settings.top_k,
                                temperature=settings.temperature)
    started = time.time()
    expanded = [r for _ in range(settings.seeds) for r in requests]  # seed-major: seed 0's clips first

    def report_every(what: str) -> Callable[[int, int], None]:
        return lambda done, total: say(f"{what}: {done}/{total} clips ({time.time() - started:.0f} s)")

    # Seed s's batches follow seed s-1's, so `--seeds 2` reproduces `--seeds 1` as its first half.
    batches_per_seed = -(-len(requests) // settings.batch_size)
    cond: list[torch.Tensor] = []
    uncond: list[torch.Tensor] = []
    for s in range(settings.seeds):
        cond += generate_clips(model, requests, len(requests), settings.batch_size,
                               settings.seed + s * batches_per_seed, report_every(f"conditional, seed {s}"))
    for s in range(settings.seeds):  # as many unconditional clips, batched the same way
        uncond += generate_clips(model, None, len(requests), settings.batch_size,
                                 settings.seed + UNCONDITIONAL_SEED_OFFSET + s * batches_per_seed,
                                 report_every(f"unconditional, seed {s}"))
    generation_seconds = time.time() - started
    if save_audio is not None:
        write_clips(save_audio, cond, uncond, model.sample_rate)
    say(f"scoring {len(cond)} + {len(uncond)} clips on {', '.join(e.name for e in estimators)}")
    report = adherence_report(expanded, cond, model.sample_rate, list(estimators), unconditional=uncond)
    for item, request in zip(report["items"], expanded):
        item.update(id=request.get("id"), description=plain_caption(request), seed=item["index"] // len(requests))
    report["settings"] = {**dataclasses.asdict(settings), "model": getattr(model, "name", None),
                          "n_prompts": len(requests), "sample_rate": model.sample_rate,
                          "unconditional_seed": settings.seed + UNCONDITIONAL_SEED_OFFSET,
                          "generation_seconds": round(generation_seconds, 1),
                          "total_seconds": round(time.time() - started, 1)}
    return report


def write_clips(folder: str | Path, cond: Sequence[torch.Tensor], uncond: Sequence[torch.Tensor],
                sample_rate: int) -> None:
    """cond_NNNN.wav / uncond_NNNN.wav, as generated (no level normalisation: what was scored)."""
    from ..audio import audio_write

    folder = Path(folder)
    for prefix, clips in (("cond", cond), ("uncond", uncond)):
        for i, wav in enumerate(clips):
            audio_write(folder / f"{prefix}_{i:04d}", wav, sample_rate, normalize=False, log_clipping=False)


def annotate(report: dict[str, Any], prompts: str, classifiers: dict[str, tuple[AudioClassifier, str]],
             left_out: dict[str, dict[str, int]]) -> dict[str, Any]:
    """Add where the prompts and classifiers came from, and the judges' own held-out accuracy:
    a classifier that is right 70 % of the time caps what its adherence row can show."""
    report["settings"]["prompts"] = str(prompts)
    report["classifiers"] = {}
    for attr, (clf, folder) in classifiers.items():
        training = clf.training_report or {}
        report["classifiers"][attr] = {"folder": str(folder), "labels": list(clf.labels),
                                       "val_accuracy": training.get("val_accuracy"),
                                       "chance_accuracy": training.get("chance_accuracy"),
                                       "n_val": training.get("n_val")}
    report["left_out"] = left_out
    return report


def adherence_document(report: dict[str, Any]) -> str:
    """Markdown for a model card: what was run, the table, and the judges' reliability."""
    s = report["settings"]
    lines = [f"Prompt adherence of `{s.get('model')}`: {s['n_prompts']} prompts"
             + (f" from `{s['prompts']}`" if s.get("prompts") else "")
             + f" x {s['seeds']} seed(s) = {report['n_conditional']} clips of {s['duration']:g} s "
             f"(CFG {s['cfg']:g}, top-k {s['top_k']}, seed {s['seed']}"
             + (f", {s['quantize']} weights" if s.get("quantize") else "") + "); baseline: "
             f"{report['n_unconditional']} unconditional clips of the same model, each scored against "
             f"every request. Values are mean ± standard error; margin = conditional - unconditional.", "",
             adherence_markdown(report).rstrip("\n")]
    notes = []
    for attr, info in report.get("classifiers", {}).items():
        acc, chance = info.get("val_accuracy"), info.get("chance_accuracy")
        if acc is not None:
            notes.append(f"- `{attr}` judge: a {len(info['labels'])}-class classifier, {acc:.3f} accurate on "
                         f"{info.get('n_val')} held-out real clips"
                         + (f" (chance {chance:.3f})" if chance is not None else "") + ".")
    for attr, classes in report.get("left_out", {}).items():
        notes.append(f"- `{attr}`: {sum(classes.values())} prompts left out, their class is unknown to the "
                     f"classifier: " + ", ".join(f"{c} ({n})" for c, n in classes.items()) + ".")
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"
