"""How well do the adherence judges read the real thing? Scores the held-out *renders* (the audio
the eval prompts were written from) with the same tempo and key estimators `wavecraft eval
adherence` applies to generated clips: the ceiling a perfect model would reach.

    python recipes/bundled/judge_ceiling.py datasets/music/eval --seconds 5
    python recipes/bundled/judge_ceiling.py datasets/music/eval --seconds 5 --codec codec  # through the codec

With --codec the renders are first encoded and decoded by that codec: the ceiling for a model
whose tokens were perfect, since everything a model generates passes through its codec.
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("split", help="a built split folder (data.jsonl + audio/*.json sidecars)")
    parser.add_argument("--seconds", type=float, default=5.0, help="score the first SECONDS of each clip")
    parser.add_argument("--codec", default=None, help="round-trip each clip through this codec first")
    args = parser.parse_args()

    from wavecraft.audio import audio_read
    from wavecraft.metrics.key import estimate_key, mirex_key_score
    from wavecraft.metrics.tempo import estimate_tempo, tempo_accuracy1, tempo_accuracy2

    split = Path(args.split)
    codec = None
    if args.codec:
        import torch

        from wavecraft.codec import load_codec

        codec = load_codec(args.codec)
    acc1, acc2, key_scores = [], [], []
    for line in (split / "data.jsonl").read_text().splitlines():
        item = json.loads(line)
        meta = json.loads((split / item["path"]).with_suffix(".json").read_text())
        wav, sr = audio_read(split / item["path"], duration=args.seconds,
                             sample_rate=codec.sample_rate if codec is not None else None)
        if codec is not None:
            with torch.no_grad():
                codes, scale = codec.encode(wav[None])
                wav = codec.decode(codes, scale, length=wav.shape[-1])[0]
        if meta.get("bpm"):
            bpm = estimate_tempo(wav, sr)
            acc1.append(float(tempo_accuracy1(bpm, meta["bpm"])))
            acc2.append(float(tempo_accuracy2(bpm, meta["bpm"])))
        if meta.get("key"):
            key_scores.append(mirex_key_score(estimate_key(wav, sr), meta["key"]))
    mean = statistics.fmean
    print(f"{split}: first {args.seconds:g} s of each render" + (f", through codec {args.codec!r}" if codec else ""))
    print(f"tempo accuracy (within 4 %): {mean(acc1):.3f} over {len(acc1)} clips; x2/x3 allowed: {mean(acc2):.3f}")
    print(f"MIREX key score: {mean(key_scores):.3f} over {len(key_scores)} clips")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
