"""Do prompts that differ in one attribute give different music? A listening check, measured.

Pairs (or triples) of prompts that differ only in tempo, or only in instrument, are generated with
the same seeds; each clip's tempo is estimated by beat tracking and its instrument family by the
judge classifier. A model that ignores the changed word gives the same distribution for every
prompt of a group. Prints a markdown table (the bundled music card quotes it).

    python recipes/bundled/contrast.py --model music --classifier runs/judges/instrument_family \
        --seeds 6 --duration 5 --out runs/adherence/contrast
"""
from __future__ import annotations

import argparse
import statistics
from collections import Counter
from pathlib import Path

import torch

TEMPO_GROUP = [
    "Rock at {bpm} BPM, with electric guitar, electric bass and drums.",
    [70, 100, 150],
]
# Worded like the training captions of solo pieces (the model knows no other phrasing).
INSTRUMENT_GROUP = [
    "Folk song in G major at 100 BPM, played on solo {instrument}. Warm and pleasant.",
    ["grand piano", "nylon-string guitar", "accordion", "violin", "flute"],
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="music")
    parser.add_argument("--classifier", required=True, help="instrument-family judge folder")
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--out", default=None, help="folder for the clips (optional)")
    args = parser.parse_args()

    from wavecraft.audio import audio_write
    from wavecraft.metrics.classifier import AudioClassifier
    from wavecraft.metrics.tempo import estimate_tempo
    from wavecraft.models.loaders.auto import load_model

    model = load_model(args.model)
    judge = AudioClassifier.load(args.classifier)
    model.set_generation_params(duration=args.duration)
    sr = model.sample_rate

    def clips(prompt: str) -> list[torch.Tensor]:
        return [model.generate([prompt], seed=s)[0] for s in range(args.seeds)]

    def save(tag: str, wavs: list[torch.Tensor]) -> None:
        if args.out:
            Path(args.out).mkdir(parents=True, exist_ok=True)
            for s, wav in enumerate(wavs):
                audio_write(Path(args.out) / f"{tag}_seed{s}", wav, sr, strategy="peak")

    print(f"Same seeds (0-{args.seeds - 1}), {args.duration:g} s clips, model {args.model!r}.\n")
    print("| prompt | measured tempo, median bpm (each seed) | judge's instrument family (count over seeds) |")
    print("|---|---|---|")
    template, values = TEMPO_GROUP
    for bpm in values:
        prompt = template.format(bpm=bpm)
        wavs = clips(prompt)
        save(f"tempo{bpm}", wavs)
        tempos = [estimate_tempo(w, sr) for w in wavs]
        families = Counter(judge.predict(w, sr) for w in wavs)
        each = ", ".join(f"{t:.0f}" for t in tempos)
        print(f"| {prompt} | {statistics.median(tempos):.0f} ({each}) | {_counts(families)} |")
    template, values = INSTRUMENT_GROUP
    for instrument in values:
        prompt = template.format(instrument=instrument)
        wavs = clips(prompt)
        save(instrument.replace(" ", "_"), wavs)
        tempos = [estimate_tempo(w, sr) for w in wavs]
        families = Counter(judge.predict(w, sr) for w in wavs)
        print(f"| {prompt} | {statistics.median(tempos):.0f} | {_counts(families)} |")
    return 0


def _counts(counter: Counter) -> str:
    return ", ".join(f"{name} {n}" for name, n in counter.most_common())


if __name__ == "__main__":
    raise SystemExit(main())
