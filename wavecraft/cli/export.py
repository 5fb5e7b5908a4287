"""`wavecraft export RUN_DIR OUT_DIR`: a training run -> the inference format."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export", help="write a training run's model in the format load_codec / MusicGen.get_pretrained read",
        description="Export the latest checkpoint of a `wavecraft train` run (EMA weights when the run kept them).",
    )
    p.add_argument("run_dir", help="the run folder (run.out_dir of the recipe)")
    p.add_argument("out_dir", help="folder to write the model to")
    p.add_argument("--force", action="store_true", help="overwrite a non-empty OUT_DIR")
    p.add_argument("--half", action="store_true",
                   help="store the weights as float16 (half the size; they load back as float32)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from wavecraft.train.export import export_run

    kind, out = export_run(args.run_dir, args.out_dir, overwrite=args.force, half=args.half)
    loader = "wavecraft.load_codec" if kind == "codec" else "MusicGen.get_pretrained"
    print(f"exported the {kind} of {args.run_dir} to {out} (load it with {loader}({str(out)!r}))")
    return 0
