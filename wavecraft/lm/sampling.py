"""Choosing the next token from logits: greedy, temperature, top-k, top-p, and CFG mixing.

All randomness goes through an explicit `torch.Generator`, so the same seed gives the same tokens.
Precedence follows audiocraft: sampling off or temperature 0 -> greedy; otherwise top-p when
top_p > 0, else top-k when top_k > 0, else the full distribution.
"""
from __future__ import annotations

import torch


def cfg_mix(cond: torch.Tensor, uncond: torch.Tensor, coef: float) -> torch.Tensor:
    """Classifier-free guidance on raw logits: uncond + coef * (cond - uncond)."""
    return uncond + (cond - uncond) * coef


def _multinomial(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    flat = probs.reshape(-1, probs.shape[-1])
    return torch.multinomial(flat, 1, generator=generator).view(probs.shape[:-1])


def sample_top_k(probs: torch.Tensor, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Sample among the k most likely tokens, renormalised. probs [..., V] -> ids [...]."""
    k = min(k, probs.shape[-1])
    values, ids = torch.topk(probs, k, dim=-1)
    choice = _multinomial(values / values.sum(-1, keepdim=True), generator)
    return torch.gather(ids, -1, choice.unsqueeze(-1)).squeeze(-1)


def sample_top_p(probs: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Nucleus sampling: the smallest set of most likely tokens whose mass reaches p."""
    sorted_probs, ids = torch.sort(probs, dim=-1, descending=True)
    cumulative = torch.cumsum(sorted_probs, dim=-1)
    # Drop a token when the mass before it already exceeds p (the most likely one always stays).
    sorted_probs = sorted_probs.masked_fill(cumulative - sorted_probs > p, 0.0)
    choice = _multinomial(sorted_probs / sorted_probs.sum(-1, keepdim=True), generator)
    return torch.gather(ids, -1, choice.unsqueeze(-1)).squeeze(-1)


def sample_next(
    logits: torch.Tensor,
    use_sampling: bool = True,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """logits [..., V] -> token ids [...] (long)."""
    if not use_sampling or temperature <= 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p > 0:
        return sample_top_p(probs, top_p, generator)
    if top_k > 0:
        return sample_top_k(probs, top_k, generator)
    return _multinomial(probs, generator)


def check_sampling_params(temperature: float, top_k: int, top_p: float, cfg_coef: float) -> None:
    """Reject settings that would silently do something odd."""
    from ..errors import ConfigError

    if temperature < 0:
        raise ConfigError(f"temperature must be >= 0 (0 means greedy), got {temperature}")
    if top_k < 0:
        raise ConfigError(f"top_k must be >= 0 (0 disables it), got {top_k}")
    if not 0.0 <= top_p <= 1.0:
        raise ConfigError(f"top_p must be in [0, 1] (0 disables it), got {top_p}")
    if cfg_coef < 0:
        raise ConfigError(f"cfg_coef must be >= 0, got {cfg_coef}")
