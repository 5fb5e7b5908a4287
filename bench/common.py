"""Shared pieces of the benchmarks: random reference checkpoints, child processes, timing, tables.

Every engine runs in its own child process (one after another), so each reports its own peak
memory and none inherits another's caches; the parent prints one table. Weights are random but
identical for every engine: transformers builds and saves them once, wavecraft loads that folder.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

# EnCodec at the MusicGen 32 kHz shape (transformers' EncodecConfig), and a narrow one for --quick.
CODEC_32K = dict(sampling_rate=32000, num_filters=64, hidden_size=128, codebook_size=2048, upsampling_ratios=[8, 5, 4, 4],
                 use_causal_conv=False, use_conv_shortcut=False, pad_mode="constant", target_bandwidths=[2.2],
                 num_lstm_layers=2)
CODEC_QUICK = {**CODEC_32K, "num_filters": 4, "hidden_size": 16, "num_lstm_layers": 1}


def add_common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="tiny shapes and short audio: checks the script, not speed")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads in every engine (default 2)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--workdir", default=os.environ.get("WAVECRAFT_BENCH_DIR", "/tmp/wavecraft-bench"),
                   help="where the random checkpoints are written once and reused")
    p.add_argument("--engine", help=argparse.SUPPRESS)  # set by the parent for a child run
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")


def setup_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)


def peak_memory_mb(device: str) -> float:
    """Peak resident memory of this process since the last `reset_peak_memory` (CPU), or peak
    allocated GPU memory, in MB."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KB


def reset_peak_memory(device: str) -> None:
    """Start a new peak (after loading: what loading needed is reported apart from generation)."""
    import ctypes
    import gc

    import torch

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        return
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed load buffers back to the system
        Path("/proc/self/clear_refs").write_text("5")  # Linux: reset VmHWM to the current RSS
    except (OSError, AttributeError):
        pass


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], device: str) -> tuple[float, Any]:
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - start, out


def best_of(fn: Callable[[], Any], device: str, repeats: int) -> tuple[float, Any]:
    """The fastest of `repeats` timed calls, and the last call's result."""
    times, out = [], None
    for _ in range(repeats):
        t, out = timed(fn, device)
        times.append(t)
    return min(times), out


def read_bandwidth_gbs(device: str, megabytes: int = 1024, repeats: int = 5) -> float:
    """Read bandwidth: the best of a few full reads of a buffer far larger than the caches (on the
    CPU, `read_once`: the faster of two ways to read it)."""
    import torch

    if device.startswith("cuda"):
        megabytes = 4096
    x = torch.ones(megabytes * 2**20 // 4, device=device)
    best = 0.0
    for _ in range(repeats):
        if device.startswith("cuda"):
            seconds, _ = timed(lambda: x.sum(), device)
            best = max(best, megabytes * 2**20 / seconds / 1e9)
        else:
            best = max(best, read_once(x))
    del x
    return best


def read_once(buffer: Any) -> float:
    """GB/s of one read of a CPU fp32 buffer: the faster of PyTorch's sum (one stream per thread)
    and wavecraft's multi-stream sum (`kernels/read_probe.c`, eight streams per thread, as the
    decode kernels keep several weight rows in flight: ~15 % faster here). The bound must come
    from the fastest read we know, or a kernel could seem to beat the memory."""
    from wavecraft.kernels import stream_sum

    best = 0.0
    readers = [lambda: buffer.sum()]
    multi = stream_sum()
    if multi is not None:
        readers.append(lambda: multi(buffer, 8))
    for read in readers:
        start = time.perf_counter()
        read()
        best = max(best, buffer.numel() * 4 / (time.perf_counter() - start) / 1e9)
    return best


class StepClock:
    """Time stamps per generation step; steady-state steps/s over the middle 80% of the steps.

    With a `probe` (a callable returning GB/s), every `probe_every`-th step also measures the read
    bandwidth, and the probe's own time is taken out of the stamps (`paused` holds it in all)."""

    def __init__(self, device: str, probe: Callable[[], float] | None = None, probe_every: int = 50) -> None:
        self.device, self.stamps = device, []
        self.probe, self.probe_every = probe, probe_every
        self.probes: list[float] = []
        self.paused = 0.0

    def tick(self, *_: Any) -> None:
        self.stamps.append(time.perf_counter() - self.paused)
        if self.probe is not None and len(self.stamps) % self.probe_every == 0:
            start = time.perf_counter()
            self.probes.append(self.probe())
            self.paused += time.perf_counter() - start

    def steady_steps_per_s(self) -> float:
        n = len(self.stamps)
        if n < 5:
            return float("nan")
        a, b = n // 10, n - 1 - n // 10
        return (b - a) / (self.stamps[b] - self.stamps[a])

    def median_steps_per_s(self) -> float:
        """1 / the median step time over the same steps: insensitive to a burst of a neighbour's
        load during the run (a step's cost grows with the KV cache, so the median step is the
        middle one's, close to the mean on a quiet machine)."""
        n = len(self.stamps)
        if n < 5:
            return float("nan")
        a, b = n // 10, n - 1 - n // 10
        gaps = sorted(self.stamps[i + 1] - self.stamps[i] for i in range(a, b))
        return 1.0 / gaps[len(gaps) // 2]


def run_children(script: Path, engines: list[str], args: argparse.Namespace, extra: list[str],
                 rounds: int = 1) -> list[dict]:
    """Run `script --engine E` for each engine in turn, `rounds` times over (engines interleaved,
    so a slow spell of this machine hits all of them alike); each prints one JSON line last.
    Across rounds an engine keeps its fastest times (keys ending in `_s`), its highest peaks
    (keys with `mb`), and the rest from its first round."""
    merged: dict[str, dict] = {}
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
           "TOKENIZERS_PARALLELISM": "false"}
    for round_ in range(rounds):
        for engine in engines:
            cmd = [sys.executable, str(script), "--engine", engine, "--threads", str(args.threads),
                   "--device", args.device, "--workdir", args.workdir, *(["--quick"] if args.quick else []), *extra]
            print(f"# running {engine}{f' (round {round_ + 1} of {rounds})' if rounds > 1 else ''} ...",
                  file=sys.stderr, flush=True)
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                sys.stderr.write(proc.stdout + proc.stderr)
                raise SystemExit(f"engine {engine} failed (exit {proc.returncode})")
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            if rounds > 1:  # each round's own times: how much the machine moved during the run
                times = ", ".join(f"{k} {v:.3f}" for k, v in row.items() if k.endswith("_s") and isinstance(v, float))
                print(f"#   {engine}: {times}", file=sys.stderr, flush=True)
            best = merged.setdefault(engine, dict(row))
            for key, value in row.items():
                if isinstance(value, (int, float)) and key in best:
                    if key.endswith("_s"):
                        best[key] = min(best[key], value)
                    elif "mb" in key:
                        best[key] = max(best[key], value)
    return [merged[e] for e in engines]


def print_table(rows: list[dict], columns: list[tuple[str, str, str]], title: str) -> None:
    """columns: (key, header, format) with format like '{:.2f}'; missing values print as '-'."""
    cells = [[h for _, h, _ in columns]]
    for row in rows:
        cells.append([fmt.format(row[k]) if row.get(k) is not None else "-" for k, _, fmt in columns])
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    print(f"\n{title}\n")
    for i, r in enumerate(cells):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def machine_line(args: argparse.Namespace) -> str:
    import platform

    import torch

    return (f"torch {torch.__version__}, {args.threads} thread(s), device {args.device}, "
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
