"""How different are the contrast clips? Mean mel distance between clips of the same seed and
different prompts, against clips of the same prompt and different seeds. Run contrast.py with
`--out DIR` first; a prompt that changes the output at least as much as a new seed does gives
the first number >= the second.

    python recipes/bundled/contrast_distance.py runs/adherence/contrast
"""
from __future__ import annotations

import argparse
import itertools
import statistics
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", default="runs/adherence/contrast", help="contrast.py --out folder")
    args = parser.parse_args()

    from wavecraft.audio import audio_read
    from wavecraft.metrics.audio import mel_distance

    clips: dict[str, dict[int, tuple]] = {}  # prompt tag -> seed -> (wav, sample rate)
    for path in sorted(Path(args.folder).glob("*_seed*.wav")):
        tag, seed = path.stem.rsplit("_seed", 1)
        clips.setdefault(tag, {})[int(seed)] = audio_read(path)
    if not clips:
        parser.error(f"no *_seedN.wav clips in {args.folder}: run contrast.py with --out {args.folder} first")

    def distance(a: tuple, b: tuple) -> float:
        return float(mel_distance(a[0][None], b[0][None], a[1]))

    groups = {"tempo": [t for t in clips if t.startswith("tempo")],
              "instrument": [t for t in clips if not t.startswith("tempo")]}
    for name, tags in groups.items():
        same_seed = [distance(clips[a][s], clips[b][s]) for a, b in itertools.combinations(tags, 2)
                     for s in clips[a] if s in clips[b]]
        same_prompt = [distance(clips[t][s1], clips[t][s2]) for t in tags
                       for s1, s2 in itertools.combinations(sorted(clips[t]), 2)]
        if same_seed and same_prompt:
            print(f"{name}: mel distance, same seed different prompt {statistics.fmean(same_seed):.3f}; "
                  f"same prompt different seed {statistics.fmean(same_prompt):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
