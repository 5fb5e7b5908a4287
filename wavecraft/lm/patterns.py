"""Codebook interleaving patterns: how K parallel token streams become one autoregressive sequence.

A codec gives K codebooks per frame, `codes [B, K, T]`. The LM predicts one *step* at a time and
each step holds at most one token per codebook, so a pattern is a table saying which time index of
codebook k sits at step s (or nothing: the special "empty" token). Following audiocraft, every
pattern starts with one empty step (the model's input there is the special token for all K), so
the first real token is always predicted from a known start.

- parallel:     step s holds time s-1 for every codebook.                      S = T + 1
- delay:        codebook k is shifted right by delays[k] (default k).          S = T + max(delays) + 1
- unroll:       one codebook per step, time-major (t0k0, t0k1, ..., t1k0 ...). S = K*T + 1
- coarse_first: codebook 0 for all times, then codebooks 1..K-1 in parallel.   S = 2*T + 1

`build` turns codes into the step sequence plus a validity mask [K, S]; `revert` does the reverse
for tokens or logits. Logits produced at step s predict the tokens of step s+1, so reverting
logits (`shift=1`) reads step s(k, t) - 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

PATTERN_KINDS = ("parallel", "delay", "unroll", "coarse_first")


@dataclass(frozen=True)
class Pattern:
    """The layout for K codebooks and T time steps.

    indexes[k, s] is the time index held by codebook k at step s, or -1 for the empty token.
    steps[k, t] is the step at which (k, t) sits (the inverse map).
    """

    kind: str
    n_q: int
    timesteps: int
    indexes: torch.Tensor  # [K, S] long, -1 where the special token goes
    steps: torch.Tensor  # [K, T] long

    @property
    def num_steps(self) -> int:
        return self.indexes.shape[1]

    @property
    def mask(self) -> torch.Tensor:
        """[K, S] bool: True where the step holds a real token."""
        return self.indexes >= 0

    def first_step_with_time(self, t: int) -> int:
        """The first step holding time index `t` in any codebook (generation resumes there after a
        prompt of `t` frames). For t == T, the number of steps."""
        if t >= self.timesteps:
            return self.num_steps
        return int(self.steps[:, t].min())

    def build(self, codes: torch.Tensor, special_token: int) -> tuple[torch.Tensor, torch.Tensor]:
        """codes [B, K, T] -> (sequence [B, K, S] with `special_token` at empty steps, mask [K, S])."""
        B, K, T = codes.shape
        if K != self.n_q or T != self.timesteps:
            raise ValueError(f"pattern is for K={self.n_q}, T={self.timesteps}; got codes of shape {tuple(codes.shape)}")
        idx = self.indexes.to(codes.device)
        valid = idx >= 0
        gathered = torch.gather(codes, 2, idx.clamp(min=0).unsqueeze(0).expand(B, -1, -1))
        seq = torch.where(valid.unsqueeze(0), gathered, torch.full_like(gathered, special_token))
        return seq, valid

    def revert(self, sequence: torch.Tensor, shift: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """sequence [B, K, S, *rest] -> (values [B, K, T, *rest], mask [K, T]).

        Use shift=1 for logits, whose step s predicts step s+1. Every (k, t) of the layout exists,
        so the mask is all True; it is returned for symmetry with `build` and audiocraft's API.
        """
        B, K, S = sequence.shape[:3]
        if K != self.n_q or S != self.num_steps:
            raise ValueError(f"pattern has K={self.n_q}, S={self.num_steps}; got {tuple(sequence.shape)}")
        steps = (self.steps - shift).to(sequence.device)
        rest = sequence.shape[3:]
        index = steps.view(1, K, self.timesteps, *([1] * len(rest))).expand(B, K, self.timesteps, *rest)
        out = torch.gather(sequence, 2, index)
        return out, torch.ones(K, self.timesteps, dtype=torch.bool, device=sequence.device)


def _from_layout(kind: str, n_q: int, timesteps: int, layout: list[list[tuple[int, int]]]) -> Pattern:
    """layout[s] lists the (t, k) pairs held at step s; entries with t >= T are dropped."""
    indexes = torch.full((n_q, len(layout)), -1, dtype=torch.long)
    steps = torch.full((n_q, timesteps), -1, dtype=torch.long)
    for s, coords in enumerate(layout):
        for t, k in coords:
            if 0 <= t < timesteps:
                indexes[k, s] = t
                steps[k, t] = s
    assert (steps >= 0).all(), "every (codebook, time) pair must appear in the layout"
    return Pattern(kind, n_q, timesteps, indexes, steps)


def make_pattern(kind: str, n_q: int, timesteps: int, delays: list[int] | tuple[int, ...] | None = None) -> Pattern:
    """Build a pattern. `delays` is used by 'delay' (default [0, 1, ..., K-1]) and by 'coarse_first'
    (delays of codebooks 1..K-1 among themselves, default all 0)."""
    if n_q < 1 or timesteps < 0:
        raise ValueError(f"need n_q >= 1 and timesteps >= 0, got {n_q}, {timesteps}")
    layout: list[list[tuple[int, int]]] = [[]]  # the initial empty step
    if kind == "parallel":
        delays = [0] * n_q
        kind_delays = True
    elif kind == "delay":
        delays = list(range(n_q)) if delays is None else list(delays)
        kind_delays = True
    else:
        kind_delays = False
    if kind_delays:
        assert delays is not None
        if len(delays) != n_q or min(delays) < 0:
            raise ValueError(f"delay pattern needs {n_q} non-negative delays, got {delays}")
        for t in range(timesteps + max(delays)):
            layout.append([(t - d, k) for k, d in enumerate(delays) if t - d >= 0])
    elif kind == "unroll":
        for t in range(timesteps):
            for k in range(n_q):
                layout.append([(t, k)])
    elif kind == "coarse_first":
        rest = [0] * (n_q - 1) if delays is None else list(delays)
        if len(rest) != n_q - 1 or (rest and min(rest) < 0):
            raise ValueError(f"coarse_first needs {n_q - 1} non-negative delays, got {rest}")
        for t in range(timesteps):
            layout.append([(t, 0)])
        if n_q > 1:
            for t in range(timesteps + max(rest)):
                layout.append([(t - d, k + 1) for k, d in enumerate(rest) if t - d >= 0])
    else:
        raise ValueError(f"unknown pattern {kind!r}; choose one of {PATTERN_KINDS}")
    return _from_layout(kind, n_q, timesteps, layout)
