"""`wavecraft train codec|lm --config RECIPE [key=value ...]`: train or resume a model."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="train a codec or a MusicGen-style LM from a YAML recipe",
        description="Train (or resume) a codec or an LM. A run folder (run.out_dir) that already holds a "
                    "checkpoint is resumed. Several processes: torchrun --nproc_per_node=N -m wavecraft.train ...",
    )
    # codec / lm are sub-commands (not a plain positional) so that `KEY=VALUE ...` may follow --config.
    kinds = p.add_subparsers(dest="kind", metavar="KIND")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
    for kind, text in (("codec", "train a neural audio codec (EnCodec recipe)"),
                       ("lm", "train or fine-tune a MusicGen/AudioGen language model")):
        k = kinds.add_parser(kind, help=text, description=text)
        k.add_argument("--config", "-c", required=True, metavar="RECIPE", help="recipe YAML (see recipes/)")
        k.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                       help="recipe overrides, e.g. optim.lr=1e-4 run.out_dir=runs/mine data.batch_size=16")
        k.add_argument("--restart", action="store_true",
                       help="start over in run.out_dir, discarding its checkpoint and metrics")
        k.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from wavecraft.train import train

    metrics = train(args.kind, args.config, args.overrides, restart=args.restart)
    if metrics:  # only the main process of a distributed run gets them
        print("final validation: " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
    return 0
