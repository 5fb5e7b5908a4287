"""`wavecraft eval codec|lm|melody MODEL MANIFEST`: objective metrics on a dataset."""
from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval", help="measure a codec or a generation model on a manifest",
        description="codec: SI-SNR, mel and STFT distances of the reconstruction. lm: per-codebook "
                    "cross-entropy and perplexity. melody: chroma cosine similarity of melody-conditioned output.",
    )
    p.add_argument("what", choices=["codec", "lm", "melody"], help="which evaluation")
    p.add_argument("model", help="codec (for codec) or MusicGen model (for lm/melody): a folder or a name")
    p.add_argument("manifest", help="data.jsonl[.gz] of the evaluation files")
    p.add_argument("--max-files", type=int, default=None, help="evaluate only the first N files")
    p.add_argument("--seconds", type=float, default=None,
                   help="seconds per file (codec: first 10 s by default; lm: the model's window; melody: 8 s)")
    p.add_argument("--bandwidth", type=float, default=None, help="codec: bitrate in kbps (default: all codebooks)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from wavecraft.errors import WavecraftError
    from wavecraft.metrics import evaluate

    if args.json and Path(args.json).exists():
        raise WavecraftError(f"{args.json} already exists; choose another --json file")
    if args.what == "codec":
        from wavecraft.codec import load_codec

        codec = load_codec(args.model, device=args.device)
        if args.bandwidth is not None:
            codec.set_bandwidth(args.bandwidth)
        result = evaluate.evaluate_codec(codec, args.manifest, args.max_files, args.seconds or 10.0, progress=True)
    else:
        from wavecraft.models.musicgen import MusicGen

        model = MusicGen.get_pretrained(args.model, device=args.device)
        if args.what == "lm":
            result = evaluate.evaluate_lm(model, args.manifest, args.max_files, args.seconds, progress=True)
        else:
            result = evaluate.evaluate_melody(model, args.manifest, args.max_files, args.seconds or 8.0, progress=True)
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value:.4f}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0
