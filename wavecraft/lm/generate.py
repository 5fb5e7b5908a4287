"""The generation loop: pattern steps, classifier-free guidance, sampling, prompt forcing.

It knows nothing about text or audio files: it takes condition tensors (and optionally prompt
codes) and returns codes [B, K, T]. One loop serves every pattern:

    sequence = pattern.build(codes with -1 for unknown, prompt filled in)
    feed the known prefix, then for each step s: logits -> CFG mix -> sample -> keep the prompt
    token where one exists, the special token where the pattern has no token, else the sample.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..config import Config
from .model import Conditions, LMModel
from .sampling import cfg_mix, check_sampling_params, sample_next

UNKNOWN = -1  # marks not-yet-generated positions inside the step sequence


@dataclass
class GenerationParams(Config):
    use_sampling: bool = True
    temperature: float = 1.0
    top_k: int = 250
    top_p: float = 0.0
    cfg_coef: float = 3.0
    two_step_cfg: bool = False

    def __post_init__(self) -> None:
        check_sampling_params(self.temperature, self.top_k, self.top_p, self.cfg_coef)


ProgressFn = Callable[[int, int], None]
LogitsFn = Callable[[int, torch.Tensor], None]


@torch.inference_mode()
def generate_codes(
    lm: LMModel,
    num_frames: int,
    conditions: Conditions | None = None,
    params: GenerationParams | None = None,
    prompt: torch.Tensor | None = None,
    num_samples: int | None = None,
    generator: torch.Generator | None = None,
    null_conditions: Conditions | None = None,
    progress: ProgressFn | None = None,
    on_logits: LogitsFn | None = None,
) -> torch.Tensor:
    """Generate codes [B, K, num_frames] (the prompt, if any, is their first P frames).

    conditions: the conditional rows. Classifier-free guidance runs when cfg_coef != 1 and there
      are conditions; the unconditional rows use `null_conditions` (default: `conditions.null()`).
    prompt: codes [B, K, P] to continue from (P <= num_frames).
    progress(done, total) is called after each step; on_logits(step, logits [B, K, card]) sees the
      guided logits before sampling (for tests and analysis).
    """
    params = params or GenerationParams()
    conditions = conditions or Conditions()
    cfg = lm.cfg
    device = lm.head.weight.device
    B = conditions.batch_size or (prompt.shape[0] if prompt is not None else num_samples)
    if B is None:
        raise ValueError("give conditions, a prompt or num_samples to fix the batch size")
    for name, n in (("conditions", conditions.batch_size), ("prompt", None if prompt is None else prompt.shape[0])):
        if n is not None and n != B:
            raise ValueError(f"{name} has batch size {n}, expected {B}")

    pattern = cfg.make_pattern(num_frames)
    codes = torch.full((B, cfg.n_q, num_frames), UNKNOWN, dtype=torch.long, device=device)
    prompt_len = 0
    if prompt is not None:
        prompt_len = prompt.shape[-1]
        if prompt.shape[1] != cfg.n_q or prompt_len > num_frames:
            raise ValueError(f"prompt of shape {tuple(prompt.shape)} does not fit K={cfg.n_q}, T={num_frames}")
        if prompt_len and (int(prompt.min()) < 0 or int(prompt.max()) >= cfg.card):
            raise ValueError(f"prompt codes must lie in [0, {cfg.card})")
        codes[..., :prompt_len] = prompt.to(device)
    sequence, valid = pattern.build(codes, cfg.special_token)
    start = pattern.first_step_with_time(prompt_len)
    total = pattern.num_steps

    use_cfg = params.cfg_coef != 1.0 and conditions.batch_size is not None
    if use_cfg:
        null = null_conditions if null_conditions is not None else conditions.null()
    if use_cfg and not params.two_step_cfg:
        states = [lm.start_decoding(conditions.cat(null), 2 * B, total)]
    elif use_cfg:
        states = [lm.start_decoding(conditions, B, total), lm.start_decoding(null, B, total)]
    else:
        states = [lm.start_decoding(conditions, B, total)]

    def guided_logits(tokens: torch.Tensor) -> torch.Tensor:
        if not use_cfg:
            return lm.decode(states[0], tokens)
        if len(states) == 1:
            both = lm.decode(states[0], torch.cat([tokens, tokens], dim=0))
            return cfg_mix(both[:B], both[B:], params.cfg_coef)
        return cfg_mix(lm.decode(states[0], tokens), lm.decode(states[1], tokens), params.cfg_coef)

    special = torch.tensor(cfg.special_token, device=device)
    valid_steps = valid.to(device).t()  # [S, K]
    inputs = sequence[:, :, :start]
    for s in range(start, total):
        logits = guided_logits(inputs)
        if on_logits is not None:
            on_logits(s, logits)
        tokens = sample_next(logits, params.use_sampling, params.temperature, params.top_k, params.top_p, generator)
        tokens = torch.where(valid_steps[s], tokens, special)
        known = sequence[:, :, s]
        sequence[:, :, s] = torch.where(known == UNKNOWN, tokens, known)
        inputs = sequence[:, :, s : s + 1]
        if progress is not None:
            progress(s - start + 1, total - start)

    out, _ = pattern.revert(sequence)
    assert not bool((out == UNKNOWN).any()), "generation left positions unfilled"
    return out
