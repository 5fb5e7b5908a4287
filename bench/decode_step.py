"""One decode step in one process: the fused C step against LeanStep driven from Python.

    python bench/decode_step.py                   # musicgen-small shape, fp32 and int8, 250 positions cached
    python bench/decode_step.py --prompts 2       # two prompts: a batch of four rows
    python bench/decode_step.py --quick           # tiny shapes: checks that everything runs

The same random musicgen-small-shape checkpoint as bench/musicgen.py (built there once, reused).
Two decode states are filled to --positions cached positions with the same tokens, one with
`lm.fused_decoding` on and one off; then their steps are timed interleaved, --rounds times at the
same position (a slow spell of the machine hits both alike). Reported per mode: the median and
best step in ms for each path, the ratio of medians, and the largest logit difference between
the two paths over the filling steps.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from common import add_common_args, machine_line, print_table, setup_threads
from musicgen import PROMPT, build


def measure(folder: Path, quantize: str | None, positions: int, rounds: int, prompts: int) -> dict:
    import torch

    from wavecraft.models.musicgen import MusicGen

    model = MusicGen.get_pretrained(str(folder), quantize=quantize)
    lm = model.lm
    cond, _ = model.prepare_conditions([PROMPT] * prompts)
    both = cond.cat(cond.null())
    rows = 2 * prompts
    g = torch.Generator().manual_seed(0)
    tokens = [torch.randint(0, lm.cfg.card, (rows, lm.cfg.n_q, 1), generator=g) for _ in range(positions)]
    with torch.inference_mode():
        states = [lm.start_decoding(both, rows, positions + 2) for _ in range(2)]
        logits = [[], []]
        for t in tokens:
            for i, state in enumerate(states):
                lm.fused_decoding = i == 0  # read when the state's LeanStep is built, at its second step
                logits[i].append(lm.decode(state, t))
        worst = max((a - b).abs().max().item() for a, b in zip(*logits))
        times: list[list[float]] = [[], []]
        start = states[0].pos
        for _ in range(rounds):
            for i, state in enumerate(states):
                state.pos = start  # the same position every round: the KV cache stays the same length
                t0 = time.perf_counter()
                lm.decode(state, tokens[0])
                times[i].append(time.perf_counter() - t0)
    lm.fused_decoding = True
    fused_ms, python_ms = (statistics.median(t) * 1e3 for t in times)
    return dict(mode=quantize or "fp32", fused=states[0].lean.fused is not None, fused_ms=fused_ms,
                fused_best_ms=min(times[0]) * 1e3, python_ms=python_ms, python_best_ms=min(times[1]) * 1e3,
                ratio=python_ms / fused_ms, logit_diff=worst)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(p)
    p.add_argument("--modes", default="fp32,int8", help="comma list among fp32, int8, int4")
    p.add_argument("--positions", type=int, default=None, help="cached positions (default 250, --quick 20)")
    p.add_argument("--rounds", type=int, default=30, help="timed steps per path")
    p.add_argument("--prompts", type=int, default=1, help="prompts in the batch (each with its CFG null row)")
    args = p.parse_args()
    setup_threads(args.threads)
    folder = build(Path(args.workdir) / ("musicgen-quick" if args.quick else "musicgen-small-random"), args.quick)
    positions = args.positions or (20 if args.quick else 250)
    rows = [measure(folder, None if mode == "fp32" else mode, positions, args.rounds, args.prompts)
            for mode in args.modes.split(",")]
    columns = [("mode", "weights", "{}"), ("fused", "fused step built", "{}"),
               ("fused_ms", "fused ms (median)", "{:.2f}"),
               ("fused_best_ms", "fused ms (best)", "{:.2f}"), ("python_ms", "Python-driven ms (median)", "{:.2f}"),
               ("python_best_ms", "Python-driven ms (best)", "{:.2f}"), ("ratio", "x (medians)", "{:.2f}"),
               ("logit_diff", "max logit diff", "{:.1e}")]
    print_table(rows, columns, f"Decode step at {positions} cached positions, {args.prompts} prompt(s) with CFG "
                               f"(batch {2 * args.prompts}); {machine_line(args)}")


if __name__ == "__main__":
    main()
