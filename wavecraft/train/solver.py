"""The training loop shared by the codec and LM solvers.

A solver owns models, optimisers and data; this base class owns the run: device and process group,
seeding, the step loop, logging, periodic validation / samples / checkpoints, and exact resume.

Exact resume rests on three facts: (1) batch `b` of the data stream is a pure function of
(seed, b), so a resumed loader starts at the saved step; (2) every RNG the step draws from (torch,
python) is saved and restored, and validation / sample generation run inside `fork_rng` so they
never advance it; (3) the learning rate is a pure function of the step. So a run stopped at step N
and resumed produces bit-identical losses to one that never stopped (tests/test_train_codec.py).
"""
from __future__ import annotations

import contextlib
import math
import random
import shutil
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError
from . import distributed as dist
from .checkpoint import CHECKPOINT_NAME, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import OptimConfig, RunConfig
from .logging import METRICS_FILE, MetricLogger

# What a run folder may hold: anything else means run.out_dir points at a folder of the user's.
RUN_ENTRIES = {CHECKPOINT_NAME, METRICS_FILE, "config.yaml", "tensorboard", "samples"}


def lr_factor(cfg: OptimConfig, step: int, total_steps: int) -> float:
    """Multiplier of `cfg.lr` for the update made at (0-based) `step`."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "cosine":
        progress = (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps)
        cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cosine
    if cfg.schedule == "inverse_sqrt":
        return math.sqrt(max(1, cfg.warmup_steps) / max(step + 1, cfg.warmup_steps, 1))
    return 1.0


def make_optimizer(module: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """Adam, or AdamW when weight decay is set; decay only applies to matrices (not norms/biases)."""
    params = [p for p in module.parameters() if p.requires_grad]
    if cfg.weight_decay > 0:
        decay = [p for p in params if p.dim() >= 2]
        no_decay = [p for p in params if p.dim() < 2]
        groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps)
    return torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps)


def set_lr(optimizer: torch.optim.Optimizer, cfg: OptimConfig, step: int, total_steps: int) -> float:
    lr = cfg.lr * lr_factor(cfg, step, total_steps)
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


class ModelEMA:
    """Exponential moving average of a module's parameters (buffers follow the live model).

    The effective decay ramps up as min(decay, (1 + n) / (10 + n)) so the average is useful after a
    few updates instead of being dominated by the initial weights.
    """

    def __init__(self, module: nn.Module, decay: float):
        self.decay = decay
        self.updates = 0
        self.shadow = {k: p.detach().clone() for k, p in module.named_parameters()}

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for k, p in module.named_parameters():
            self.shadow[k].lerp_(p.detach(), 1 - d)

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates, "shadow": {k: v.cpu() for k, v in self.shadow.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updates = int(state["updates"])
        for k, v in state["shadow"].items():
            self.shadow[k].copy_(v)

    def averaged_state_dict(self, module: nn.Module) -> dict[str, torch.Tensor]:
        """The module's state dict with parameters replaced by their averages."""
        state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
        for k, v in self.shadow.items():
            if k in state:
                state[k] = v.detach().cpu().clone().to(state[k].dtype)
        return state


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"run.device={name} but no CUDA GPU is available; use run.device=cpu")
    return name


class Solver:
    """Subclasses implement the hooks marked below; `run()` drives them."""

    kind = "base"

    def __init__(self, config: Any, restart: bool = False):
        self.config = config
        run: RunConfig = config.run
        if run.num_threads:
            torch.set_num_threads(run.num_threads)
        self.device = dist.init_distributed(resolve_device(run.device))
        self.rank, self.world = dist.rank(), dist.world_size()
        self.out_dir = Path(run.out_dir)
        self.step = 0
        self.data_skipped = 0
        self.bad_files: set[str] = set()
        # Same seed on every rank: identical initial weights and identical random choices that must
        # agree across ranks (quantizer dropout); per-rank data comes from the sampler instead.
        torch.manual_seed(run.seed)
        random.seed(run.seed)
        self.build()
        state = self._prepare_run_dir(restart)
        if state is not None:
            self.load_state(state)
            self.step = int(state["step"])
            self.data_skipped = int(state.get("data_skipped", 0))
            self.bad_files = set(state.get("bad_files", []))
            set_rng_state(state["rng"][min(self.rank, len(state["rng"]) - 1)])
        self.after_resume()
        self.logger = MetricLogger(self.out_dir, enabled=dist.is_main(), tensorboard=run.tensorboard,
                                   progress=run.progress, total_steps=self.end_step, start_step=self.step)

    # -- hooks -----------------------------------------------------------------------------------
    def build(self) -> None:
        """Create models, optimisers, datasets (called once, before any resume)."""
        raise NotImplementedError

    def after_resume(self) -> None:
        """Called once the (possibly resumed) weights are in place: wrap models, load optimiser states."""

    def train_step(self, batch: dict[str, Any]) -> dict[str, float]:
        raise NotImplementedError

    def train_dataset(self) -> torch.utils.data.Dataset:
        raise NotImplementedError

    def validate(self) -> dict[str, float]:
        return {}

    def generate_samples(self, folder: Path) -> None:
        pass

    def model_state(self) -> dict[str, Any]:
        """Solver-specific part of the checkpoint (models, optimisers, EMA, ...)."""
        raise NotImplementedError

    def load_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    # -- run -------------------------------------------------------------------------------------
    @property
    def end_step(self) -> int:
        run = self.config.run
        return min(run.steps, run.stop_at) if run.stop_at else run.steps

    def _prepare_run_dir(self, restart: bool) -> dict[str, Any] | None:
        ckpt = self.out_dir / CHECKPOINT_NAME
        state = None
        if ckpt.exists() and not restart:
            state = load_checkpoint(ckpt)
            if state.get("kind") != self.kind:
                raise CheckpointError(f"{ckpt} is a {state.get('kind')} run, not a {self.kind} run; use another run.out_dir")
            saved = state.get("config", {})
            for section in self.resume_must_match():
                if saved.get(section) != self.config.to_dict().get(section):
                    raise ConfigError(
                        f"run.out_dir {self.out_dir} holds a run with a different `{section}` section; resume it "
                        f"with its own recipe ({self.out_dir / 'config.yaml'}), choose a new run.out_dir, "
                        f"or pass --restart to start over there"
                    )
        foreign = sorted(p.name for p in self.out_dir.iterdir() if p.name not in RUN_ENTRIES
                         and not p.name.startswith(".")) if self.out_dir.is_dir() else []
        if foreign:
            raise ConfigError(f"run.out_dir {self.out_dir} holds files that are not from a training run "
                              f"(e.g. {foreign[:3]}); choose a new or empty folder")
        dist.barrier()
        if dist.is_main():
            self.out_dir.mkdir(parents=True, exist_ok=True)
            metrics = self.out_dir / METRICS_FILE
            if state is None:
                # A fresh start: forget what an earlier attempt in this folder logged and wrote.
                for leftover in (metrics, ckpt, self.out_dir / "tensorboard", self.out_dir / "samples"):
                    if leftover.is_dir():
                        shutil.rmtree(leftover)
                    elif leftover.exists():
                        leftover.unlink()
            elif metrics.exists():
                # Steps after the checkpoint will be redone: drop their records so the log reads
                # as one uninterrupted run.
                import json

                lines = metrics.read_text(encoding="utf-8").splitlines()
                kept = [ln for ln in lines if ln.strip() and json.loads(ln).get("step", 0) <= state["step"]]
                metrics.write_text("".join(ln + "\n" for ln in kept), encoding="utf-8")
            self.config.to_yaml(self.out_dir / "config.yaml")
        dist.barrier()
        return state

    def resume_must_match(self) -> tuple[str, ...]:
        return ("model",)

    def save(self) -> None:
        # Every rank's RNG state is gathered so each resumes its own stream.
        states = [rng_state()]
        if dist.is_distributed():
            gathered: list[Any] = [None] * self.world
            torch.distributed.all_gather_object(gathered, states[0])
            states = gathered
        model_state = self.model_state()  # every rank calls it (FSDP gathers shards here)
        if dist.is_main():
            save_checkpoint({
                "kind": self.kind,
                "step": self.step,
                "config": self.config.to_dict(),
                "rng": states,
                "data_skipped": self.data_skipped,
                "bad_files": sorted(self.bad_files),
                **model_state,
            }, self.out_dir / CHECKPOINT_NAME)
        dist.barrier()

    def batches(self) -> Iterator[dict[str, Any]]:
        from ..data.dataset import make_loader

        cfg = self.config.data
        loader = make_loader(self.train_dataset(), cfg.batch_size, cfg.num_workers, start_batch=self.step,
                             rank=self.rank, world_size=self.world, pin_memory=self.device.type == "cuda")
        yield from loader

    def run(self) -> dict[str, float]:
        """Train until `end_step`; returns the last validation metrics."""
        run = self.config.run
        window: dict[str, list[float]] = {}
        last_valid: dict[str, float] = {}
        in_step = False
        try:
            if self.step >= self.end_step:
                self.logger.write(f"run already at step {self.step} (end {self.end_step}); nothing to do")
                return last_valid
            for batch in self.batches():
                self.data_skipped += int(batch.get("skipped", 0))
                for path in batch.get("bad_paths", []):
                    if path not in self.bad_files:
                        self.bad_files.add(path)
                        self.logger.write(f"skipping unusable audio {path} ({len(self.bad_files)} bad file(s) so far)")
                in_step = True
                metrics = self.train_step(batch)
                self.step += 1
                in_step = False
                for k, v in metrics.items():
                    window.setdefault(k, []).append(float(v))
                if self.step % run.log_every == 0 or self.step == self.end_step:
                    self._log_train(window)
                    window = {}
                at_end = self.step == self.end_step
                if (run.valid_every and self.step % run.valid_every == 0) or at_end:
                    with torch.random.fork_rng(devices=self._rng_devices()):
                        last_valid = self.validate()
                    if last_valid:
                        self.logger.log(self.step, "valid", last_valid)
                if (run.generate_every and self.step % run.generate_every == 0) or at_end:
                    with torch.random.fork_rng(devices=self._rng_devices()):
                        self.generate_samples(self.out_dir / "samples" / f"step_{self.step:07d}")
                if self.step % run.save_every == 0 or at_end:
                    self.save()
                if at_end:
                    break
        except KeyboardInterrupt:
            # Saving needs every rank (collectives) and whole steps; otherwise the last periodic
            # checkpoint stands and a restart resumes from there.
            if not in_step and not dist.is_distributed():
                self.logger.write(f"interrupted: saving a checkpoint at step {self.step}")
                self.save()
            else:
                self.logger.write("interrupted: resume continues from the last saved checkpoint")
            raise
        finally:
            self.logger.close()
        return last_valid

    def _rng_devices(self) -> list[int]:
        return [self.device.index or 0] if self.device.type == "cuda" else []

    def _log_train(self, window: dict[str, list[float]]) -> None:
        names = sorted(window)
        means = torch.tensor([sum(window[k]) / len(window[k]) for k in names], dtype=torch.float64)
        means = dist.all_reduce_mean(means)
        record = dict(zip(names, means.tolist()))
        record["data_skipped"] = self.data_skipped
        self.logger.log(self.step, "train", record)
        self.logger.progress(self.step, record)

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """Mixed precision on GPU when enabled; on CPU only with run.cpu_autocast (bfloat16)."""
        if self.device.type == "cuda" and self.config.run.autocast:
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            with torch.autocast("cuda", dtype=dtype):
                yield
        elif self.device.type == "cpu" and self.config.run.cpu_autocast:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                yield
        else:
            yield
