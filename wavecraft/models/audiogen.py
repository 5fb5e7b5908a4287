"""`AudioGen`: text-to-sound with the same machinery as MusicGen and audiocraft's AudioGen defaults.

Differences from MusicGen are only defaults: a 10 s training window, a 2 s sliding-window stride,
5 s of audio unless told otherwise, and no melody conditioning.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from ..errors import ConfigError
from .musicgen import MusicGen


class AudioGen(MusicGen):
    """Text-to-sound generation (audiocraft's `AudioGen` API)."""

    def set_generation_params(  # type: ignore[override]
        self,
        use_sampling: bool = True,
        top_k: int = 250,
        top_p: float = 0.0,
        temperature: float = 1.0,
        duration: float = 10.0,
        cfg_coef: float = 3.0,
        two_step_cfg: bool = False,
        extend_stride: float | None = None,
        seed: int | None = None,
    ) -> None:
        """Same arguments as audiocraft's AudioGen (duration 10 s; extend_stride None: the model's, 2 s)."""
        super().set_generation_params(
            use_sampling=use_sampling, top_k=top_k, top_p=top_p, temperature=temperature, duration=duration,
            cfg_coef=cfg_coef, two_step_cfg=two_step_cfg, extend_stride=extend_stride, seed=seed,
        )

    def generate_with_chroma(self, descriptions: Sequence[str | None], melody_wavs: Any, melody_sample_rate: int,
                             progress: bool = False, return_tokens: bool = False,
                             seed: int | None = None) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        raise ConfigError("AudioGen has no melody conditioning; use generate() or generate_continuation()")
