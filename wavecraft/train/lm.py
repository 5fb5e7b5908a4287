"""LM solver: MusicGen/AudioGen training on codec tokens.

Per step: audio -> codes with the frozen codec (or codes straight from a token cache), captions and
metadata -> condition tensors (with classifier-free-guidance dropout and per-attribute dropout),
the LM predicts every codebook through its interleaving pattern, and the loss is cross-entropy per
codebook over valid positions (frames that hold real audio). AdamW, warm-up + cosine, clipping,
autocast on GPU, DDP or FSDP across processes.
"""
from __future__ import annotations

import contextlib
import logging
import math
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from ..conditioners import ConditionFuser, Conditioner
from ..data.dataset import SegmentDataset, collate_items, item_rng
from ..data.manifest import read_manifest
from ..errors import ConfigError
from ..lm import Conditions, LMModel
from ..models.components import TEXT_TYPES, build_conditioner, conditioner_type
from ..models.musicgen import MusicGen, MusicGenConfig
from . import distributed as dist
from .config import LMTrainConfig
from .losses import cross_entropy_per_codebook
from .solver import ModelEMA, Solver, make_optimizer, set_lr

logger = logging.getLogger(__name__)

VALID_SEED_OFFSET = 1_000_003
DROPOUT_SEED_OFFSET = 7_919


class LMTrainModule(nn.Module):
    """LM + trainable conditioner parts as one module, so DDP/FSDP see every trained parameter."""

    def __init__(self, lm: LMModel, conditioners: dict[str, Conditioner], fuse: dict[str, str]):
        super().__init__()
        self.lm = lm
        self.conditioners = nn.ModuleDict(conditioners)
        self.fuser = ConditionFuser(dict(fuse))

    def conditions(self, tokenized: dict[str, dict[str, Any]]) -> Conditions:
        tensors = {attr: self.conditioners[attr](tok) for attr, tok in tokenized.items()}
        fused = self.fuser(tensors)
        return Conditions(fused.cross, fused.prefix, fused.sum)

    def forward(self, codes: torch.Tensor, tokenized: dict[str, dict[str, Any]]) -> torch.Tensor:
        logits, _ = self.lm.compute_predictions(codes, self.conditions(tokenized))
        return logits


class LMSolver(Solver):
    kind = "lm"
    config: LMTrainConfig

    # -- construction --------------------------------------------------------------------------
    def build(self) -> None:
        cfg = self.config
        from ..codec import load_codec

        if cfg.init_from:
            pre = MusicGen.get_pretrained(cfg.init_from, device="cpu")
            mg_config, lm, conditioners = pre.config, pre.lm, dict(pre.conditioners)
            codec = load_codec(cfg.codec) if cfg.codec else pre.codec
        else:
            assert cfg.model is not None
            mg_config = cfg.model
            lm = LMModel(mg_config.lm)
            conditioners = {attr: build_conditioner(spec) for attr, spec in mg_config.conditioners.items()}
            codec = load_codec(cfg.codec)
            # The LM only ever sees `segment_duration` seconds: that is its generation window.
            seg = cfg.data.segment_duration
            mg_config = mg_config.replace(max_duration=seg, extend_stride=min(mg_config.extend_stride, 0.5 * seg),
                                          default_duration=min(mg_config.default_duration, seg))
        if mg_config.stereo:
            raise ConfigError("training stereo (interleaved) models is not supported yet; use a mono model")
        unknown = sorted(set(cfg.attribute_dropout) - set(conditioners))
        if unknown:
            raise ConfigError(f"attribute_dropout names {unknown}, but the model's conditioners are {sorted(conditioners)}")
        self.mg_config: MusicGenConfig = mg_config
        self.codec = codec.to(self.device).eval()
        self.codec.requires_grad_(False)
        self._check_codec(lm)
        self.module = LMTrainModule(lm, conditioners, mg_config.fuse).to(self.device)
        dist.broadcast_module(self.module)
        self.fsdp = cfg.run.strategy == "fsdp" and self.world > 1
        if self.fsdp and self.device.type != "cuda":
            raise ConfigError("run.strategy=fsdp shards the model over GPUs and needs CUDA; use run.strategy=ddp on CPU")
        if self.fsdp and cfg.optim.ema_decay > 0:
            raise ConfigError("optim.ema_decay needs full weights on every rank; use run.strategy=ddp with EMA")
        self.ema = ModelEMA(self.module, cfg.optim.ema_decay) if cfg.optim.ema_decay > 0 else None
        fp16 = self.device.type == "cuda" and cfg.run.autocast and not torch.cuda.is_bf16_supported()
        self.scaler = torch.amp.GradScaler("cuda", enabled=fp16)
        self._optim_state: dict[str, Any] | None = None
        self._build_data()

    def after_resume(self) -> None:
        # Wrapping comes after loading: FSDP shards the weights it is given, and its optimiser must
        # be built over the wrapped (flattened) parameters.
        cfg = self.config
        strategy = cfg.run.strategy if self.world > 1 else "none"
        wrap_cls = {type(layer) for layer in self.module.lm.transformer.layers}
        self.wrapped = dist.wrap_model(self.module, self.device, strategy, wrap_modules=wrap_cls)
        self.opt = make_optimizer(self.wrapped if self.fsdp else self.module, cfg.optim)
        if self._optim_state is not None:
            if self.fsdp:
                from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

                self._optim_state = FSDP.optim_state_dict_to_load(self.wrapped, self.opt, self._optim_state)
            self.opt.load_state_dict(self._optim_state)
            self._optim_state = None

    def _check_codec(self, lm: LMModel) -> None:
        n_q, card = lm.cfg.n_q, lm.cfg.card
        if self.codec.cardinality != card or getattr(self.codec, "total_codebooks", n_q) < n_q:
            raise ConfigError(f"the codec gives codebooks of {self.codec.cardinality} entries "
                              f"({getattr(self.codec, 'total_codebooks', '?')} of them) but the LM expects {n_q} of {card}")
        if hasattr(self.codec, "set_num_codebooks"):
            self.codec.set_num_codebooks(n_q)

    def _build_data(self) -> None:
        cfg = self.config
        if cfg.token_cache:
            from ..data.tokens import TokenCacheError, TokenDataset

            # Melody (chroma) conditioners read the audio under each code segment.
            audio = any(conditioner_type(c) == "chroma" for c in self.module.conditioners.values())
            self._train_set = TokenDataset(cfg.token_cache, cfg.data, seed=cfg.run.seed, with_audio=audio)
            meta = self._train_set.meta
            if (meta["n_q"], meta["card"]) != (self.module.lm.cfg.n_q, self.module.lm.cfg.card):
                raise TokenCacheError(f"token cache {cfg.token_cache} holds {meta['n_q']} codebooks of {meta['card']}, "
                                      f"the LM expects {self.module.lm.cfg.n_q} of {self.module.lm.cfg.card}")
            own_hash = self.codec.weights_hash() if hasattr(self.codec, "weights_hash") else None
            if meta.get("codec_hash") and own_hash and meta["codec_hash"] != own_hash:
                raise TokenCacheError(f"token cache {cfg.token_cache} was encoded with another codec "
                                      f"({meta['codec']}); rebuild it with this recipe's codec")
            self._valid_set = TokenDataset(cfg.token_cache, cfg.data, seed=cfg.run.seed + VALID_SEED_OFFSET,
                                           with_audio=audio)
        else:
            if (cfg.data.sample_rate, cfg.data.channels) != (self.codec.sample_rate, self.codec.channels):
                raise ConfigError(f"data.sample_rate/channels must match the codec: {self.codec.sample_rate} Hz, "
                                  f"{self.codec.channels} channel(s)")
            if not cfg.data.manifest:
                raise ConfigError("data.manifest is empty: point it at a data.jsonl, or set token_cache")
            self._train_set = SegmentDataset(read_manifest(cfg.data.manifest), cfg.data, seed=cfg.run.seed)
            valid = read_manifest(cfg.data.valid_manifest) if cfg.data.valid_manifest else self._train_set.metas
            self._valid_set = SegmentDataset(valid, cfg.data, seed=cfg.run.seed + VALID_SEED_OFFSET)

    def train_dataset(self) -> torch.utils.data.Dataset:
        return self._train_set

    def resume_must_match(self) -> tuple[str, ...]:
        return ("model", "init_from", "codec")

    # -- batches -> model inputs ---------------------------------------------------------------
    def _codes(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """(codes [B, K, T] long, valid-frame mask [B, K, T] bool)."""
        if "codes" in batch:
            codes = batch["codes"].to(self.device)
            frames = batch["length"].to(self.device)
        else:
            wav = batch["wav"].to(self.device)
            with torch.no_grad():
                codes, _ = self.codec.encode(wav)
            hop = self.codec.sample_rate / self.codec.frame_rate
            frames = torch.ceil(batch["length"].to(self.device) / hop).long()
        T = codes.shape[-1]
        valid = torch.arange(T, device=self.device)[None, :] < frames[:, None]
        return codes, valid[:, None, :].expand(-1, codes.shape[1], -1)

    def _rows(self, batch: dict[str, Any], dropout: bool) -> dict[str, list[Any]]:
        """One input row per example for every conditioner, after CFG / attribute dropout."""
        B = len(batch["caption"])
        rows: dict[str, list[Any]] = {}
        for attr, cond in self.module.conditioners.items():
            kind = conditioner_type(cond)
            if kind in TEXT_TYPES:
                rows[attr] = list(batch["caption"])
            elif kind == "chroma":
                wav = batch["wav"]
                rows[attr] = [(wav[i], self.codec.sample_rate) for i in range(B)]
            else:
                rows[attr] = [info.get(attr) for info in batch["info"]]
        if dropout:
            cfg = self.config
            for i, index in enumerate(batch["index"].tolist()):
                # A pure function of the example, so runs and resumes drop the same conditions.
                rng = item_rng(cfg.run.seed + DROPOUT_SEED_OFFSET, index)
                drop_all = rng.random() < cfg.cfg_dropout
                for attr in rows:
                    if drop_all or rng.random() < cfg.attribute_dropout.get(attr, 0.0):
                        rows[attr][i] = None
        return rows

    def _tokenize(self, rows: dict[str, list[Any]]) -> dict[str, dict[str, Any]]:
        return {attr: self.module.conditioners[attr].tokenize(r) for attr, r in rows.items()}

    # -- one step ------------------------------------------------------------------------------
    def train_step(self, batch: dict[str, Any]) -> dict[str, float]:
        cfg = self.config
        lr = set_lr(self.opt, cfg.optim, self.step, cfg.run.steps)
        self.module.train()
        codes, valid = self._codes(batch)
        tokenized = self._tokenize(self._rows(batch, dropout=True))
        with self.autocast():
            logits = self.wrapped(codes, tokenized)
        loss, per_k = cross_entropy_per_codebook(logits, codes, valid)
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        grad_norm = None
        if cfg.optim.max_norm > 0:
            self.scaler.unscale_(self.opt)
            clip = getattr(self.wrapped, "clip_grad_norm_", None)  # FSDP needs its own (sharded) version
            if clip is not None:
                grad_norm = float(clip(cfg.optim.max_norm))
            else:
                grad_norm = float(torch.nn.utils.clip_grad_norm_(self.module.parameters(), cfg.optim.max_norm))
        self.scaler.step(self.opt)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update(self.module)
        metrics = {"ce": loss.item(), "ppl": math.exp(min(loss.item(), 20.0)), "lr": lr}
        metrics.update({f"ce_q{k}": v for k, v in enumerate(per_k.tolist())})
        if grad_norm is not None:
            metrics["grad_norm"] = grad_norm
        return metrics

    # -- validation and samples ----------------------------------------------------------------
    @contextlib.contextmanager
    def _eval_weights(self) -> Iterator[LMTrainModule]:
        """The module in eval mode, holding the EMA weights while inside (live weights restored)."""
        live = None
        if self.ema is not None:
            live = {k: v.detach().clone() for k, v in self.module.state_dict().items()}
            self.module.load_state_dict(self.ema.averaged_state_dict(self.module))
        self.module.eval()
        try:
            yield self.module
        finally:
            if live is not None:
                self.module.load_state_dict(live)
            self.module.train()

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        with self._eval_weights() as module:
            return self._validate(module)

    def _validate(self, module: LMTrainModule) -> dict[str, float]:
        n, bs = self.config.data.valid_samples, self.config.data.batch_size
        totals = None
        count = 0
        for start in range(0, n, bs):
            batch = collate_items([self._valid_set[i] for i in range(start, min(n, start + bs))])
            codes, valid = self._codes(batch)
            with self.autocast():
                logits = module(codes, self._tokenize(self._rows(batch, dropout=False)))
            _, per_k = cross_entropy_per_codebook(logits, codes, valid)
            totals = per_k * len(batch["caption"]) if totals is None else totals + per_k * len(batch["caption"])
            count += len(batch["caption"])
        if totals is None:
            return {}
        per_k = (totals / count).tolist()
        out = {"ce": sum(per_k) / len(per_k)}
        out["ppl"] = math.exp(min(out["ce"], 20.0))
        out.update({f"ce_q{k}": v for k, v in enumerate(per_k)})
        return out

    def to_musicgen(self, module: LMTrainModule | None = None) -> MusicGen:
        """The current model as a `MusicGen` (what export writes); shares weights with training."""
        module = module or self.module
        cls = MusicGen
        if self.mg_config.kind == "audiogen":
            from ..models.audiogen import AudioGen as cls  # type: ignore[no-redef]
        return cls(self.config.name, self.mg_config, module.lm, self.codec, dict(module.conditioners.items()))

    @torch.no_grad()
    def generate_samples(self, folder: Path) -> None:
        if not dist.is_main():
            return
        from ..audio import audio_write

        sc = self.config.samples
        prompts = list(sc.prompts)
        if not prompts:
            prompts = [self._valid_set[i]["caption"] for i in range(self.config.run.num_generate)]
        with self._eval_weights() as module:
            model = self.to_musicgen(module)
            model.set_generation_params(duration=sc.duration, cfg_coef=sc.cfg_coef, top_k=sc.top_k,
                                        temperature=sc.temperature, extend_stride=0.5 * model.max_duration)
            wav = model.generate(prompts, seed=sc.seed)
        folder.mkdir(parents=True, exist_ok=True)
        lines = []
        for i, (prompt, audio) in enumerate(zip(prompts, wav)):
            audio_write(folder / f"{i:02d}", audio.cpu(), model.sample_rate, strategy="peak")
            lines.append(f"{i:02d}.wav\t{prompt or '(unconditional)'}")
        (folder / "prompts.txt").write_text("\n".join(lines) + "\n")

    # -- checkpoint ----------------------------------------------------------------------------
    def model_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"model": dist.full_state_dict(self.wrapped)}
        if self.fsdp:
            from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

            state["optimizer"] = FSDP.optim_state_dict(self.wrapped, self.opt)
        else:
            state["optimizer"] = self.opt.state_dict()
        state["scaler"] = self.scaler.state_dict()
        state["musicgen_config"] = self.mg_config.to_dict()
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["model"])
        self._optim_state = state["optimizer"]  # loaded once the optimiser exists (after_resume)
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None and "ema" in state:
            self.ema.load_state_dict(state["ema"])
