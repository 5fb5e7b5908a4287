"""`wavecraft demo`: the main job in one command, with what this installation bundles.

With a bundled generation model: music from a prompt. Until one is bundled: the codec job instead,
a compress -> decompress round trip of the packaged sample through the bundled codec, with its
bitrate and measured fidelity. It is what `make run` calls on a fresh clone: no flags, no network,
no weights to find. Outputs go to new files in outputs/ (an existing file is never replaced: a
numbered name is picked instead).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

DEMO_PROMPT = "an upbeat funk groove with slap bass and electric piano, 112 bpm, in E minor"
SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "hip_hop_beat.flac"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo", help="the main job with the bundled models: generate music (or round-trip the codec)",
        description="Generate music from a prompt with the bundled default model and write it to "
                    "OUT_DIR (a new numbered file if the name is taken). While no generation model "
                    "is bundled, compress and decompress a sample with the bundled codec instead.",
    )
    p.add_argument("prompt", nargs="?", default=DEMO_PROMPT, help=f"text prompt (default: {DEMO_PROMPT!r})")
    p.add_argument("--out-dir", default="outputs", help="folder for the file (default outputs/)")
    p.add_argument("-m", "--model", default=None, help="model name or folder (default: the bundled music model)")
    p.add_argument("-d", "--duration", type=float, default=8.0, help="seconds to generate (default 8)")
    p.add_argument("-s", "--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--normalize", default="loudness", choices=("loudness", "peak", "rms", "clip"),
                   help="output level normalisation (default loudness)")
    p.set_defaults(func=run_demo)


def free_path(folder: Path, stem: str, suffix: str = ".wav") -> Path:
    """folder/stem.suffix, or folder/stem_N.suffix for the first N not taken."""
    path = folder / f"{stem}{suffix}"
    n = 1
    while path.exists():
        path = folder / f"{stem}_{n}{suffix}"
        n += 1
    return path


def run_demo(args: argparse.Namespace) -> int:
    from wavecraft.errors import ConfigError
    from wavecraft.models.registry import DEFAULT_CODEC, DEFAULT_MODEL

    if not args.prompt.strip():
        raise ConfigError("the prompt is empty: describe the music to generate")
    if not args.duration > 0:
        raise ConfigError(f"--duration must be > 0 seconds, got {args.duration:g}")
    name = args.model or DEFAULT_MODEL
    if name is not None:
        return _generate(args, name)
    if DEFAULT_CODEC is None:
        raise ConfigError("no bundled model is installed; pass --model with a model folder")
    print("no bundled generation model in this installation yet: round-tripping a sample through the "
          f"bundled codec ({DEFAULT_CODEC!r}) instead; pass --model to generate with your own model",
          file=sys.stderr)
    return _round_trip(args, DEFAULT_CODEC)


def _generate(args: argparse.Namespace, name: str) -> int:
    from wavecraft.audio import audio_write
    from wavecraft.models.loaders.auto import load_model
    from wavecraft.models.musicgen import describe

    start = time.perf_counter()
    model = load_model(name)
    loaded = time.perf_counter()
    model.set_generation_params(duration=args.duration, seed=args.seed)
    print(describe(model), file=sys.stderr)
    print(f"prompt: {args.prompt}", file=sys.stderr)
    wav = model.generate([args.prompt.strip()], progress=True)
    done = time.perf_counter()
    folder = Path(args.out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    written = audio_write(free_path(folder, "demo"), wav[0].cpu(), model.sample_rate, format="wav",
                          add_suffix=False, strategy=args.normalize, loudness_compressor=True)
    seconds = wav.shape[-1] / model.sample_rate
    print(f"wrote {written}: {seconds:.1f} s of audio in {done - loaded:.1f} s "
          f"({seconds / max(done - loaded, 1e-9):.2f}x real time; model loaded in {loaded - start:.1f} s)")
    return 0


def _round_trip(args: argparse.Namespace, codec_name: str) -> int:
    from wavecraft.audio import audio_read
    from wavecraft.compress import compress_file, decompress_file
    from wavecraft.metrics.audio import mel_distance, si_snr

    folder = Path(args.out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    wcc = free_path(folder, "demo", ".wcc")
    decoded = free_path(folder, "demo_decoded")
    packed = compress_file(SAMPLE, wcc, model=codec_name, progress=False)
    print(packed.summary())
    unpacked = decompress_file(wcc, decoded, progress=False)
    print(f"decoded to {unpacked.output} in {unpacked.seconds:.2f} s")
    original, sr = audio_read(SAMPLE)
    back, _ = audio_read(decoded, sample_rate=sr)
    n = min(original.shape[-1], back.shape[-1])
    x, y = original[None, :, :n], back[None, :, :n]
    print(f"fidelity vs the original: SI-SNR {float(si_snr(y, x)):.1f} dB, mel distance "
          f"{float(mel_distance(y, x, sr)):.3f}")
    return 0
