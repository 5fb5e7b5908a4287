"""The bundled models' speed on this machine: load, generate, stream (time to first audio).

    python bench/bundled.py                    # "music" and "sound", 10 s of audio, 2 threads, CPU
    python bench/bundled.py --models music --seconds 30

Each model runs in its own process (as a user's command would). Reported: load seconds, one-shot
generation seconds and steps/s (text encoding, every step and the codec decode; best of --repeats),
streaming time to first audio and total (best of --repeats), how far the joined stream is from
the one-shot output for the same seed (it should be float rounding), and peak memory. The issue's
target for the bundled model: first audio under 1 s on the 2-core development machine.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from common import add_common_args, best_of, machine_line, peak_memory_mb, print_table, run_children, setup_threads

PROMPTS = {"music": "Funk at 112 BPM, with slap bass, electric piano and drums.",
           "sound": "a dog barks twice while rain falls on a tin roof"}


def run_engine(args: argparse.Namespace) -> dict:
    import torch

    from wavecraft.models.loaders.auto import load_model

    name = args.engine
    start = time.perf_counter()
    model = load_model(name)
    model.to(args.device)
    load_s = time.perf_counter() - start
    model.set_generation_params(duration=args.seconds)
    prompt = [PROMPTS.get(name, PROMPTS["music"])]
    steps = 0

    def count(done: int, total: int) -> None:
        nonlocal steps
        steps = total

    model.set_custom_progress_callback(count)
    with torch.inference_mode():
        model.generate(prompt, seed=0)  # warm-up: first calls allocate and fill caches
        best_gen, audio = best_of(lambda: model.generate(prompt, seed=0), args.device, args.repeats)
        best_first, best_total, pieces = float("inf"), float("inf"), []
        for _ in range(args.repeats):
            t0, first, pieces = time.perf_counter(), None, []
            for piece in model.generate_stream(prompt, seed=0):
                first = first if first is not None else time.perf_counter() - t0
                pieces.append(piece)
            best_total = min(best_total, time.perf_counter() - t0)
            best_first = min(best_first, first if first is not None else best_total)
    streamed = torch.cat(pieces, dim=-1)
    n = min(streamed.shape[-1], audio.shape[-1])
    return dict(engine=name, seconds=audio.shape[-1] / model.sample_rate, load_s=load_s, gen_s=best_gen,
                steps_per_s=steps / best_gen if steps else None, ttfa_s=best_first, stream_s=best_total,
                stream_diff=float((streamed[..., :n] - audio[..., :n]).abs().max()),
                same_length="yes" if streamed.shape[-1] == audio.shape[-1] else "NO",
                peak_mb=peak_memory_mb(args.device))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(p)
    p.add_argument("--models", default="music,sound", help="bundled model names, comma-separated")
    p.add_argument("--seconds", type=float, default=None, help="audio length (default 10, --quick 1)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each measure; the best is kept")
    args = p.parse_args()
    args.seconds = args.seconds or (1.0 if args.quick else 10.0)
    if args.engine:
        setup_threads(args.threads)
        print(json.dumps(run_engine(args)))
        return
    rows = run_children(Path(__file__).resolve(), args.models.split(","), args,
                        ["--seconds", str(args.seconds), "--repeats", str(args.repeats)])
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print_table(rows, [
        ("engine", "model", "{}"), ("seconds", "audio s", "{:g}"), ("load_s", "load s", "{:.2f}"),
        ("gen_s", "generate s", "{:.2f}"), ("steps_per_s", "steps/s", "{:.0f}"), ("ttfa_s", "first audio s", "{:.2f}"),
        ("stream_s", "stream total s", "{:.2f}"), ("same_length", "stream length = one-shot", "{}"),
        ("stream_diff", "stream vs one-shot max diff", "{:.1e}"), ("peak_mb", "peak MB", "{:.0f}"),
    ], f"Bundled models; {machine_line(args)}")


if __name__ == "__main__":
    sys.exit(main())
