"""Training: codec and LM solvers, losses, discriminator, balancer, checkpoints, distributed runs.

    from wavecraft.train import train
    train("codec", "recipes/tiny_codec.yaml", ["data.manifest=toy/data.jsonl"])

Under torchrun (`torchrun --nproc_per_node=N -m wavecraft.train codec --config ...`) every process
calls the same function; the solvers join the process group from torchrun's environment.
"""
from __future__ import annotations

from typing import Any

KINDS = ("codec", "lm")


def make_solver(kind: str, recipe: str, overrides: list[str] | None = None, restart: bool = False) -> Any:
    """Load a recipe (YAML) with `key=value` overrides and build its solver (resuming if possible)."""
    from ..errors import ConfigError
    from .config import CodecTrainConfig, LMTrainConfig, load_recipe

    if kind == "codec":
        from .codec import CodecSolver

        return CodecSolver(load_recipe(CodecTrainConfig, recipe, overrides), restart=restart)
    if kind == "lm":
        from .lm import LMSolver

        return LMSolver(load_recipe(LMTrainConfig, recipe, overrides), restart=restart)
    raise ConfigError(f"unknown training kind {kind!r}; choose one of {list(KINDS)}")


def train(kind: str, recipe: str, overrides: list[str] | None = None, restart: bool = False) -> dict[str, float]:
    """Train (or resume) a run; returns the final validation metrics."""
    from . import distributed

    try:
        metrics = make_solver(kind, recipe, overrides, restart).run()
        return metrics if distributed.is_main() else {}
    finally:
        distributed.cleanup()


__all__ = ["KINDS", "make_solver", "train"]
