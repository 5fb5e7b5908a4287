"""The generation loop: pattern steps, classifier-free guidance, sampling, prompt forcing.

It knows nothing about text or audio files: it takes condition tensors (and optionally prompt
codes) and returns codes [B, K, T]. One loop serves every pattern:

    sequence = pattern.build(codes with -1 for unknown, prompt filled in)
    feed the known prefix, then for each step s: logits -> CFG mix -> sample -> keep the prompt
    token where one exists, the special token where the pattern has no token, else the sample.

`generate_codes` runs the loop to the end; `stream_codes` runs the same loop and yields each frame
as soon as every codebook of it is final (the pieces joined are the codes `generate_codes`
returns). After the first forward, single-token steps can run as a *static* step (fixed shapes,
device-side position; `Transformer.step_static`), which on CUDA is captured once in a CUDA graph
and replayed for every step: batch-1 decoding on a GPU is bound by kernel launches, which replay
removes.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch

from ..config import Config
from .model import Conditions, DecodeState, LMModel
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


class StaticStep:
    """Single-token decode with fixed shapes for one `DecodeState`, replayed from a CUDA graph when
    `use_graph` (CUDA only). Each call advances the state by one position."""

    def __init__(self, lm: LMModel, state: DecodeState, batch: int, use_graph: bool) -> None:
        lm.make_static(state)
        self.lm, self.state = lm, state
        self.graph: torch.cuda.CUDAGraph | None = None
        self.tokens = torch.zeros(batch, lm.cfg.n_q, 1, dtype=torch.long, device=lm.device)
        self.logits: torch.Tensor | None = None
        if use_graph:
            try:
                self._capture()
            except RuntimeError as err:  # e.g. an op without graph support: still correct, just slower
                warnings.warn(f"CUDA graph capture failed ({err}); decoding without graphs", stacklevel=3)
                self.graph = None

    def _capture(self) -> None:
        cache = self.state.cache
        assert cache.position is not None and cache.attend is not None
        position, attend = cache.position.clone(), cache.attend.clone()
        # Warm-up on a side stream (kernel selection, workspace and table allocation must happen
        # before capture). It writes keys at the current position, which the first real step
        # overwrites, and moves the position, which is put back.
        try:
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(2):
                    self.lm.decode_static(self.state, self.tokens)
                    cache.position.copy_(position)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):  # records the kernels without running them
                self.logits = self.lm.decode_static(self.state, self.tokens)
            self.graph = graph
        finally:
            cache.position.copy_(position)
            cache.attend.copy_(attend)

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.graph is None:
            out = self.lm.decode_static(self.state, tokens)
        else:
            self.tokens.copy_(tokens)
            self.graph.replay()
            assert self.logits is not None
            out = self.logits.clone()  # the graph's output buffer is rewritten by the next replay
        self.state.pos += 1
        self.state.cache.length += 1
        return out


class _Run:
    """One generation: the step sequence being filled in, the decode state(s) and the step function."""

    def __init__(
        self, lm: LMModel, num_frames: int, conditions: Conditions | None = None, params: GenerationParams | None = None,
        prompt: torch.Tensor | None = None, num_samples: int | None = None, generator: torch.Generator | None = None,
        null_conditions: Conditions | None = None, static: bool | None = None,
    ) -> None:
        self.lm, self.params, self.generator = lm, params or GenerationParams(), generator
        conditions = conditions or Conditions()
        cfg = lm.cfg
        device = lm.device
        B = conditions.batch_size or (prompt.shape[0] if prompt is not None else num_samples)
        if B is None:
            raise ValueError("give conditions, a prompt or num_samples to fix the batch size")
        for name, n in (("conditions", conditions.batch_size), ("prompt", None if prompt is None else prompt.shape[0])):
            if n is not None and n != B:
                raise ValueError(f"{name} has batch size {n}, expected {B}")
        self.B = B

        self.pattern = cfg.make_pattern(num_frames)
        codes = torch.full((B, cfg.n_q, num_frames), UNKNOWN, dtype=torch.long, device=device)
        self.prompt_len = 0
        if prompt is not None:
            self.prompt_len = prompt.shape[-1]
            if prompt.shape[1] != cfg.n_q or self.prompt_len > num_frames:
                raise ValueError(f"prompt of shape {tuple(prompt.shape)} does not fit K={cfg.n_q}, T={num_frames}")
            if self.prompt_len and (int(prompt.min()) < 0 or int(prompt.max()) >= cfg.card):
                raise ValueError(f"prompt codes must lie in [0, {cfg.card})")
            codes[..., : self.prompt_len] = prompt.to(device)
        self.sequence, valid = self.pattern.build(codes, cfg.special_token)
        self.frame_steps = self.pattern.steps.to(device)  # once: no host-to-device copy per step
        self.valid_steps = valid.to(device).t()  # [S, K]
        self.start = self.pattern.first_step_with_time(self.prompt_len)
        self.total = self.pattern.num_steps

        p = self.params
        self.use_cfg = p.cfg_coef != 1.0 and conditions.batch_size is not None
        null = (null_conditions if null_conditions is not None else conditions.null()) if self.use_cfg else None
        if self.use_cfg and not p.two_step_cfg:
            self.states = [lm.start_decoding(conditions.cat(null), 2 * B, self.total)]  # type: ignore[arg-type]
        elif self.use_cfg:
            self.states = [lm.start_decoding(conditions, B, self.total), lm.start_decoding(null, B, self.total)]  # type: ignore[arg-type]
        else:
            self.states = [lm.start_decoding(conditions, B, self.total)]
        self.static = device.type == "cuda" if static is None else bool(static)
        self.steppers: list[Callable[[torch.Tensor], torch.Tensor]] | None = None

    def _decoders(self, first: bool) -> list[Callable[[torch.Tensor], torch.Tensor]]:
        """The first forward (all known steps at once) always runs the plain path; later single
        steps run the static step when asked for, built (and graph-captured) once."""
        if first or not self.static:
            return [lambda t, st=st: self.lm.decode(st, t) for st in self.states]
        if self.steppers is None:
            rows = self.states[0].cache.keys[0].shape[0]
            use_graph = self.lm.device.type == "cuda"
            self.steppers = [StaticStep(self.lm, st, rows, use_graph) for st in self.states]
        return self.steppers

    def guided_logits(self, tokens: torch.Tensor, first: bool) -> torch.Tensor:
        decoders = self._decoders(first)
        if not self.use_cfg:
            return decoders[0](tokens)
        if len(decoders) == 1:
            both = decoders[0](torch.cat([tokens, tokens], dim=0))
            return cfg_mix(both[: self.B], both[self.B :], self.params.cfg_coef)
        return cfg_mix(decoders[0](tokens), decoders[1](tokens), self.params.cfg_coef)

    def steps(self, progress: ProgressFn | None = None, on_logits: LogitsFn | None = None) -> Iterator[int]:
        """Run the loop, yielding each step index once its tokens are in `self.sequence`."""
        p, seq = self.params, self.sequence
        special = torch.tensor(self.lm.cfg.special_token, device=seq.device)
        inputs = seq[:, :, : self.start]
        for s in range(self.start, self.total):
            logits = self.guided_logits(inputs, first=s == self.start)
            if on_logits is not None:
                on_logits(s, logits)
            tokens = sample_next(logits, p.use_sampling, p.temperature, p.top_k, p.top_p, self.generator)
            tokens = torch.where(self.valid_steps[s], tokens, special)
            known = seq[:, :, s]
            seq[:, :, s] = torch.where(known == UNKNOWN, tokens, known)
            inputs = seq[:, :, s : s + 1]
            if progress is not None:
                progress(s - self.start + 1, self.total - self.start)
            yield s

    def frames(self, begin: int, end: int) -> torch.Tensor:
        """Codes [B, K, end - begin] of frames [begin, end), read from the step sequence."""
        index = self.frame_steps[:, begin:end]
        return torch.gather(self.sequence, 2, index.unsqueeze(0).expand(self.B, -1, -1))

    def ready_after(self) -> list[int]:
        """ready[s - start]: how many leading frames are final once step s is done."""
        steps = self.pattern.steps
        if steps.shape[1] == 0:
            return [0] * (self.total - self.start)
        complete = torch.cummax(steps.max(dim=0).values, dim=0).values  # step completing frame t (monotone)
        at = torch.arange(self.start, self.total)
        return torch.searchsorted(complete, at, right=True).tolist()


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
    static: bool | None = None,
) -> torch.Tensor:
    """Generate codes [B, K, num_frames] (the prompt, if any, is their first P frames).

    conditions: the conditional rows. Classifier-free guidance runs when cfg_coef != 1 and there
      are conditions; the unconditional rows use `null_conditions` (default: `conditions.null()`).
    prompt: codes [B, K, P] to continue from (P <= num_frames).
    progress(done, total) is called after each step; on_logits(step, logits [B, K, card]) sees the
      guided logits before sampling (for tests and analysis).
    static: run single-token steps as the fixed-shape static step, CUDA-graph captured on CUDA
      (None: on CUDA devices only). Same results up to float summation order.
    """
    run = _Run(lm, num_frames, conditions, params, prompt, num_samples, generator, null_conditions, static)
    for _ in run.steps(progress, on_logits):
        pass
    out, _ = run.pattern.revert(run.sequence)
    assert not bool((out == UNKNOWN).any()), "generation left positions unfilled"
    return out


@torch.inference_mode()
def stream_codes(
    lm: LMModel, num_frames: int, conditions: Conditions | None = None, params: GenerationParams | None = None,
    **kwargs: Any,
) -> Iterator[torch.Tensor]:
    """`generate_codes` as a stream, with the same keyword arguments: yields codes [B, K, n] for
    the next n >= 1 frames as soon as they are final (the prompt first, in one piece). Joined along
    time, the pieces equal what `generate_codes` returns with the same arguments and generator
    state. Inference mode holds while a piece is being made, not while the caller handles it
    (torch's decorator does that for generator functions)."""
    progress, on_logits = kwargs.pop("progress", None), kwargs.pop("on_logits", None)
    run = _Run(lm, num_frames, conditions, params, **kwargs)
    ready = run.ready_after()
    done = run.prompt_len
    if done:
        yield run.frames(0, done)
    for s in run.steps(progress, on_logits):
        n = ready[s - run.start]
        if n > done:
            yield run.frames(done, n)
            done = n
