"""Recipe dataclasses: what a YAML file under `recipes/` holds for `wavecraft train codec|lm`.

Every section is its own `Config`, so a typo in a recipe or an override (`optim.lr=1e-4`) is an
error naming the valid keys, never silently ignored.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any

from ..codec.config import CodecConfig
from ..config import Config
from ..data.dataset import DataConfig
from ..models.musicgen import MusicGenConfig
from .discriminator import DiscriminatorConfig

SCHEDULES = ("constant", "cosine", "inverse_sqrt")
STRATEGIES = ("ddp", "fsdp", "none")


@dataclasses.dataclass
class OptimConfig(Config):
    lr: float = 3e-4
    betas: tuple[float, float] = (0.5, 0.9)
    eps: float = 1e-8
    weight_decay: float = 0.0  # > 0 uses AdamW (decoupled decay), else Adam
    max_norm: float = 0.0  # gradient clipping by global norm; 0 disables
    schedule: str = "constant"  # constant | cosine | inverse_sqrt
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0  # cosine: final lr as a fraction of lr
    ema_decay: float = 0.0  # exponential moving average of the weights; 0 disables

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {list(SCHEDULES)}, got {self.schedule!r}")
        if self.lr <= 0 or self.warmup_steps < 0 or not 0 <= self.ema_decay < 1:
            raise ValueError("lr must be > 0, warmup_steps >= 0 and ema_decay in [0, 1)")


@dataclasses.dataclass
class RunConfig(Config):
    """Where a run writes and how long it goes."""

    out_dir: str = "runs/default"
    steps: int = 1000  # total optimisation steps; the lr schedule spans these
    stop_at: int = 0  # stop early (with a checkpoint) at this step, schedule unchanged; 0 = run to `steps`
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    log_every: int = 10
    valid_every: int = 0  # 0: validate only at the end
    save_every: int = 200  # checkpoint period (the last step always saves)
    generate_every: int = 0  # write audio samples every N steps; 0: only at the end
    num_generate: int = 2
    progress: bool = True
    tensorboard: bool = True
    strategy: str = "ddp"  # multi-process: ddp | fsdp | none
    autocast: bool = True  # mixed precision on GPU (bfloat16 when supported, else float16)
    # bfloat16 autocast on CPU too. It pays on CPUs with AMX / AVX512-BF16 matrix units (about 2x
    # for the bundled LM recipes on this project's build machines) and costs elsewhere: opt-in.
    cpu_autocast: bool = False
    num_threads: int = 0  # torch intra-op threads on CPU; 0 keeps torch's default

    def __post_init__(self) -> None:
        if self.steps <= 0 or self.stop_at < 0 or self.log_every <= 0 or self.save_every <= 0:
            raise ValueError("steps, log_every and save_every must be > 0 and stop_at >= 0")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {list(STRATEGIES)}, got {self.strategy!r}")


@dataclasses.dataclass
class CodecLossConfig(Config):
    """Loss weights, as shares of the balanced gradient (EnCodec's recipe by default)."""

    adv: float = 4.0
    feat: float = 4.0
    l1: float = 0.1
    msspec: float = 2.0
    commitment: float = 1.0  # added directly (it does not flow through the decoder output)
    balance: bool = True
    balancer_ema: float = 0.999
    total_norm: float = 1.0
    adversarial_start: int = 0  # steps of reconstruction-only training before the GAN joins
    # Steps of plain-autoencoder training (quantizer bypassed) before quantization starts with a
    # k-means initialisation on the learned latents. With small batches (CPU), quantizing random
    # latents from step 0 starves the decoder of information and it learns a constant output.
    quantizer_start: int = 0
    mel_range_start: int = 6  # multi-scale mel windows 2^start .. 2^(end-1)
    mel_range_end: int = 11
    mel_n_mels: int = 64


@dataclasses.dataclass
class CodecTrainConfig(Config):
    model: CodecConfig = dataclasses.field(default_factory=CodecConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    disc_optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    discriminator: DiscriminatorConfig = dataclasses.field(default_factory=DiscriminatorConfig)
    losses: CodecLossConfig = dataclasses.field(default_factory=CodecLossConfig)
    run: RunConfig = dataclasses.field(default_factory=RunConfig)
    init_from: str = ""  # start from these weights (an exported codec folder/file or a run dir)
    name: str = "codec"


def load_recipe(cls: type[Config], path: str, overrides: list[str] | None = None) -> Any:
    """A recipe YAML (or JSON) with `key.sub=value` overrides applied, as `cls`."""
    from pathlib import Path

    import yaml

    from ..config import apply_overrides
    from ..errors import ConfigError

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"recipe not found: {p} (see recipes/ for examples)")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"invalid YAML in recipe {p}: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"recipe {p} must be a mapping at the top level")
    # Overrides may name keys the recipe left at their defaults: start from every default, merge the
    # recipe in, apply the overrides, and only then validate (a recipe may be completed by overrides).
    full = _defaults(cls)
    _merge(full, data)
    apply_overrides(full, overrides or [])
    return cls.from_dict(full)


def _defaults(cls: type) -> dict[str, Any]:
    """The default values of a config dataclass as plain data, without running its validation."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
        else:
            continue
        out[f.name] = value.to_dict() if isinstance(value, Config) else copy.deepcopy(value)
    return out


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict) and base[key]:
            _merge(base[key], value)
        else:
            base[key] = value


@dataclasses.dataclass
class SampleConfig(Config):
    """Audio written during training (and at the end) to listen to progress."""

    duration: float = 2.0
    prompts: list[str] = dataclasses.field(default_factory=list)  # empty: captions of validation items
    cfg_coef: float = 3.0
    top_k: int = 250
    temperature: float = 1.0
    seed: int = 0


def _lm_optim() -> OptimConfig:
    # MusicGen's recipe: AdamW (0.9, 0.95), weight decay 0.1, cosine with warm-up, clip at 1.0.
    return OptimConfig(lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1, schedule="cosine", warmup_steps=100,
                       max_norm=1.0)


@dataclasses.dataclass
class LMTrainConfig(Config):
    # Either `model` (train from scratch: the MusicGen config with its LM and conditioners) or
    # `init_from` (fine-tune: anything MusicGen.get_pretrained loads; its config is used).
    model: MusicGenConfig | None = None
    init_from: str = ""
    codec: str = ""  # anything load_codec reads; with init_from, defaults to the model's own codec
    token_cache: str = ""  # a folder from `wavecraft data tokens`; empty: encode audio on the fly
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    optim: OptimConfig = dataclasses.field(default_factory=_lm_optim)
    cfg_dropout: float = 0.3  # chance a training example loses all its conditions (for CFG)
    attribute_dropout: dict[str, float] = dataclasses.field(default_factory=dict)  # per attribute
    samples: SampleConfig = dataclasses.field(default_factory=SampleConfig)
    run: RunConfig = dataclasses.field(default_factory=RunConfig)
    name: str = "musicgen"

    def __post_init__(self) -> None:
        if (self.model is None) == (not self.init_from):
            raise ValueError("give exactly one of `model` (train from scratch) or `init_from` (fine-tune)")
        if self.model is not None and not self.codec:
            raise ValueError("`codec` is empty: name the codec that tokenises the audio (a folder load_codec reads)")
        for name, p in {"cfg_dropout": self.cfg_dropout, **self.attribute_dropout}.items():
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"dropout probability {name}={p} must be in [0, 1]")
