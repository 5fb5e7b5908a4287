"""Codec solver: EnCodec's recipe (reconstruction + MS-STFT GAN through a gradient balancer).

Per step: (1) one discriminator update on real vs reconstructed audio (hinge loss); (2) the codec
update from L1-in-time, multi-scale mel, adversarial and feature-matching losses combined by the
balancer, plus the quantizer's commitment loss added directly. Gradients are averaged across
data-parallel ranks by hand (`average_gradients`) rather than with the DDP wrapper, because the
balancer backpropagates through the model output in a custom way; the quantizer's EMA codebooks are
broadcast from rank 0 after k-means initialisation and averaged after every later step.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..codec.model import Codec
from ..data.dataset import SegmentDataset, collate_items
from ..data.manifest import read_manifest
from ..errors import ConfigError
from ..metrics.audio import mel_distance, si_snr
from . import distributed as dist
from .balancer import Balancer
from .config import CodecTrainConfig
from .discriminator import MultiScaleSTFTDiscriminator
from .losses import (MultiScaleMelLoss, feature_matching_loss, hinge_discriminator_loss, hinge_generator_loss,
                     l1_time_loss)
from .solver import ModelEMA, Solver, make_optimizer, set_lr

# Seed offset for validation segments: a different stream from training, identical every time.
VALID_SEED_OFFSET = 1_000_003


class CodecSolver(Solver):
    kind = "codec"
    config: CodecTrainConfig

    def build(self) -> None:
        cfg = self.config
        if cfg.data.sample_rate != cfg.model.sample_rate or cfg.data.channels != cfg.model.channels:
            raise ConfigError(
                f"data.sample_rate/channels ({cfg.data.sample_rate} Hz, {cfg.data.channels} ch) must match "
                f"model.sample_rate/channels ({cfg.model.sample_rate} Hz, {cfg.model.channels} ch)"
            )
        if not cfg.data.manifest:
            raise ConfigError("data.manifest is empty: point it at a data.jsonl (wavecraft data index DIR -o FILE)")
        self.model = Codec(cfg.model, name=cfg.name).to(self.device)
        if cfg.init_from:
            self._init_from(cfg.init_from)
        self.disc = MultiScaleSTFTDiscriminator(cfg.model.channels, cfg.discriminator).to(self.device)
        dist.broadcast_module(self.model)
        dist.broadcast_module(self.disc)
        self.opt = make_optimizer(self.model, cfg.optim)
        self.disc_opt = make_optimizer(self.disc, cfg.disc_optim)
        self.ema = ModelEMA(self.model, cfg.optim.ema_decay) if cfg.optim.ema_decay > 0 else None
        lc = cfg.losses
        self.msspec = MultiScaleMelLoss(cfg.model.sample_rate, lc.mel_range_start, lc.mel_range_end,
                                        lc.mel_n_mels).to(self.device)
        self.balancer = Balancer({"l1": lc.l1, "msspec": lc.msspec, "adv": lc.adv, "feat": lc.feat},
                                 total_norm=lc.total_norm, ema_decay=lc.balancer_ema, balance=lc.balance)
        self._train_set = SegmentDataset(read_manifest(cfg.data.manifest), cfg.data, seed=cfg.run.seed,
                                         with_captions=False)
        valid_metas = read_manifest(cfg.data.valid_manifest) if cfg.data.valid_manifest else self._train_set.metas
        self._valid_set = SegmentDataset(valid_metas, cfg.data, seed=cfg.run.seed + VALID_SEED_OFFSET,
                                         with_captions=False)

    def _init_from(self, source: str) -> None:
        from .export import codec_weights_from

        state = codec_weights_from(source)
        missing, unexpected = self.model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ConfigError(f"init_from={source}: weights do not fit model (missing {missing[:5]}, "
                              f"unexpected {unexpected[:5]}); the model section must describe the same codec")

    def train_dataset(self) -> SegmentDataset:
        return self._train_set

    # -- one step ------------------------------------------------------------------------------
    def train_step(self, batch: dict[str, Any]) -> dict[str, float]:
        cfg = self.config
        x = batch["wav"].to(self.device, non_blocking=True)
        lr = set_lr(self.opt, cfg.optim, self.step, cfg.run.steps)
        set_lr(self.disc_opt, cfg.disc_optim, self.step, cfg.run.steps)
        self.model.train()
        out = self.model(x, quantize=self.step >= cfg.losses.quantizer_start)
        y = out.audio
        adversarial = self.step >= cfg.losses.adversarial_start and (cfg.losses.adv > 0 or cfg.losses.feat > 0)
        metrics: dict[str, float] = {"lr": lr, "bandwidth": out.bandwidth}

        if adversarial:
            self.disc.train()
            self.disc.requires_grad_(True)
            real_logits, _ = self.disc(x)
            fake_logits, _ = self.disc(y.detach())
            d_loss = hinge_discriminator_loss(real_logits, fake_logits)
            self.disc_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            dist.average_gradients(self.disc.parameters())
            self._clip(self.disc, cfg.disc_optim.max_norm)
            self.disc_opt.step()
            metrics["d_loss"] = d_loss.item()

        losses = {"l1": l1_time_loss(y, x), "msspec": self.msspec(y, x)}
        if adversarial:
            # The discriminator is a fixed critic for the codec update: no gradients into it.
            self.disc.requires_grad_(False)
            fake_logits, fake_feats = self.disc(y)
            with torch.no_grad():
                _, real_feats = self.disc(x)
            losses["adv"] = hinge_generator_loss(fake_logits)
            losses["feat"] = feature_matching_loss(real_feats, fake_feats)
            self.disc.requires_grad_(True)
        self.opt.zero_grad(set_to_none=True)
        if cfg.losses.commitment > 0 and out.penalty.requires_grad:
            (cfg.losses.commitment * out.penalty).backward(retain_graph=True)
        self.balancer.backward(losses, y)
        dist.average_gradients(self.model.parameters())
        grad_norm = self._clip(self.model, cfg.optim.max_norm)
        self.opt.step()
        self._sync_codebooks()
        if self.ema is not None:
            self.ema.update(self.model)
        metrics.update({k: v.item() for k, v in losses.items()})
        metrics["commitment"] = out.penalty.item()
        if grad_norm is not None:
            metrics["grad_norm"] = grad_norm
        return metrics

    def _clip(self, module: torch.nn.Module, max_norm: float) -> float | None:
        if max_norm <= 0:
            return None
        return float(torch.nn.utils.clip_grad_norm_(module.parameters(), max_norm))

    def _sync_codebooks(self) -> None:
        if not dist.is_distributed():
            return
        if self.step < self.config.losses.quantizer_start:
            return  # the quantizer has not run yet
        if self.step == self.config.losses.quantizer_start:
            # k-means ran on each rank's own first batch: adopt rank 0's codebooks everywhere.
            for b in self.model.quantizer.buffers():
                torch.distributed.broadcast(b.data, 0)
        else:
            dist.average_buffers(self.model.quantizer)

    # -- validation and samples ----------------------------------------------------------------
    def _eval_model(self) -> Codec:
        if self.ema is None:
            return self.model
        model = Codec(self.config.model, name=self.config.name).to(self.device)
        model.load_state_dict(self.ema.averaged_state_dict(self.model))
        return model

    def _valid_batches(self) -> list[dict[str, Any]]:
        n = self.config.data.valid_samples
        bs = self.config.data.batch_size
        return [collate_items([self._valid_set[i] for i in range(s, min(n, s + bs))]) for s in range(0, n, bs)]

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        model = self._eval_model().eval()
        sums: dict[str, float] = {}
        count = 0
        for batch in self._valid_batches():
            x = batch["wav"].to(self.device)
            y = model(x).audio
            values = {
                "l1": torch.nn.functional.l1_loss(y, x, reduction="none").flatten(1).mean(1),
                "si_snr": si_snr(y, x),
                "mel_distance": mel_distance(y.cpu(), x.cpu(), self.config.model.sample_rate),
            }
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + float(v.sum())
            count += x.shape[0]
        self.model.train()
        return {k: v / max(1, count) for k, v in sums.items()}

    @torch.no_grad()
    def generate_samples(self, folder: Path) -> None:
        if not dist.is_main():
            return
        from ..audio import audio_write

        model = self._eval_model().eval()
        folder.mkdir(parents=True, exist_ok=True)
        items = [self._valid_set[i] for i in range(self.config.run.num_generate)]
        sr = self.config.model.sample_rate
        for i, item in enumerate(items):
            x = item["wav"][None].to(self.device)
            y = model(x).audio[0].cpu()
            audio_write(folder / f"{i:02d}_original", item["wav"], sr, strategy="none")
            audio_write(folder / f"{i:02d}_reconstruction", y, sr, strategy="clip")
        self.model.train()

    # -- checkpoint ----------------------------------------------------------------------------
    def model_state(self) -> dict[str, Any]:
        state = {
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "discriminator": {k: v.detach().cpu() for k, v in self.disc.state_dict().items()},
            "optimizer": self.opt.state_dict(),
            "disc_optimizer": self.disc_opt.state_dict(),
            "balancer": self.balancer.state_dict(),
        }
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.disc.load_state_dict(state["discriminator"])
        self.opt.load_state_dict(state["optimizer"])
        self.disc_opt.load_state_dict(state["disc_optimizer"])
        self.balancer.load_state_dict(state["balancer"])
        if self.ema is not None and "ema" in state:
            self.ema.load_state_dict(state["ema"])

    def inference_state(self) -> dict[str, torch.Tensor]:
        """Weights to export: the EMA average when enabled, else the live weights."""
        if self.ema is not None:
            return self.ema.averaged_state_dict(self.model)
        return {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
