"""`MusicGen`: text (and melody, and audio prompt) to music, with audiocraft's API.

The class wires four parts that know nothing of each other: conditioners (text/melody -> tensors),
the fuser (which tensors go to cross-attention, the prefix or the sum), the LM generation loop
(tensors -> codes) and the codec (codes -> audio). Loading and saving live in
`models/loaders/`; `AudioGen` (models/audiogen.py) is the same machine with other defaults.

    model = MusicGen.get_pretrained("path/or/hf-name")           # quantize="int8" / "int4" on CPU
    model.set_generation_params(duration=8)
    wav = model.generate(["lofi beat with warm piano"], seed=0)   # [B, C, T] at model.sample_rate
    for piece in model.generate_stream(["..."], seed=0): ...      # the same audio, while it is made
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn

from ..conditioners import ChromaConditioner, ConditionFuser, Conditioner
from ..config import Config
from ..errors import ConfigError, WavecraftError
from ..lm import Conditions, GenerationParams, LMConfig, LMModel
from ..lm.generate import stream_codes
from .components import TEXT_TYPES, DecodeStream, GenerationProgress, conditioner_type


@dataclass
class MusicGenConfig(Config):
    """What the native format stores besides weights (config.json of a saved model)."""

    kind: str = "musicgen"  # musicgen | audiogen
    lm: LMConfig = field(default_factory=LMConfig)
    conditioners: dict[str, dict] = field(default_factory=dict)  # attribute -> {"type": ..., **config}
    fuse: dict[str, str] = field(default_factory=lambda: {"description": "cross"})
    stereo: bool = False  # codes interleave the channels of a mono codec
    max_duration: float = 30.0  # seconds the LM was trained on; longer outputs use a sliding window
    extend_stride: float = 18.0  # default seconds the window moves by
    default_duration: float = 15.0


class MusicGen:
    """Text-to-music generation (audiocraft's `MusicGen` API)."""

    def __init__(
        self,
        name: str,
        config: MusicGenConfig,
        lm: LMModel,
        codec: nn.Module,
        conditioners: dict[str, Conditioner],
    ) -> None:
        self.name = name
        self.config = config
        self.lm = lm.eval()
        self.codec = codec.eval()
        self.conditioners = conditioners
        self.fuser = ConditionFuser(dict(config.fuse))
        if round(codec.frame_rate * 1000) <= 0:
            raise ConfigError("codec frame rate must be positive")
        self.embedded_encoders: set[str] = set()  # text encoders that came inside the checkpoint
        self.generation_params = GenerationParams()
        self.duration = config.default_duration
        self.extend_stride = config.extend_stride
        self.seed: int | None = None
        self._progress_callback: Callable[[int, int], None] | None = None
        # CUDA only: replay each decode step from a captured CUDA graph (lm/generate.py). False
        # runs the plain eager loop everywhere (for debugging or comparisons).
        self.cuda_graph = True

    # -- loading ----------------------------------------------------------------------------------
    @classmethod
    def get_pretrained(
        cls, name: str | os.PathLike, device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None, quantize: str | None = None,
    ) -> "MusicGen":
        """Load a model: a wavecraft folder, a Hugging Face MusicGen folder, an audiocraft folder
        (state_dict.bin + compression_state_dict.bin), or such a repo id already in the HF cache.
        Nothing is downloaded. device None: CUDA when available, else CPU. dtype: the LM's dtype
        (e.g. "bfloat16" on GPU; text encoders and codec stay float32). quantize: "int8" or "int4"
        weight-only LM linear layers (docs/performance.md), applied on `device`."""
        from ..lm.quantize import check_quantize_mode
        from .loaders.auto import load_model

        quantize = check_quantize_mode(quantize)  # before the (slow) load
        lm_dtype = None if dtype is None else _parse_dtype(dtype)
        model = load_model(name, expected=cls)
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        model.to(device)
        if lm_dtype is not None:
            model.lm.to(lm_dtype)
        if quantize is not None:
            model.quantize(quantize)
        return model

    from_pretrained = get_pretrained

    def save_pretrained(self, folder: str | os.PathLike, overwrite: bool = False) -> None:
        """Write the native format: config.json, model.safetensors (LM + conditioner weights),
        codec/ and, for text encoders that came inside a checkpoint, their own sub-folder."""
        from .loaders.musicgen_native import save_model

        if self.lm.quantization is not None:
            raise ConfigError(f"this model's LM is quantised ({self.lm.quantization}); save the unquantised model "
                              "and pass quantize= when loading it")
        save_model(self, folder, overwrite=overwrite)

    def quantize(self, mode: str) -> "MusicGen":
        """Quantise the LM's linear layers in place ("int8" or "int4", weight-only), on its device."""
        from ..lm.quantize import quantize_lm

        quantize_lm(self.lm, mode)
        return self

    def to(self, device: str | torch.device) -> "MusicGen":
        self.lm.to(device)
        self.codec.to(device)
        for cond in self.conditioners.values():
            cond.to(device)
        return self

    # -- properties users know ---------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.lm.device

    @property
    def sample_rate(self) -> int:
        return int(self.codec.sample_rate)

    @property
    def frame_rate(self) -> float:
        return float(self.codec.frame_rate)

    @property
    def audio_channels(self) -> int:
        return int(self.codec.channels)

    @property
    def max_duration(self) -> float:
        return self.config.max_duration

    @property
    def supports_melody(self) -> bool:
        return any(isinstance(c, ChromaConditioner) for c in self.conditioners.values())

    # -- settings ------------------------------------------------------------------------------------
    def set_generation_params(
        self,
        use_sampling: bool = True,
        top_k: int = 250,
        top_p: float = 0.0,
        temperature: float = 1.0,
        duration: float = 30.0,
        cfg_coef: float = 3.0,
        two_step_cfg: bool = False,
        extend_stride: float | None = None,
        seed: int | None = None,
    ) -> None:
        """audiocraft's arguments and defaults, plus `seed` (None: draw from torch's RNG).
        extend_stride None: the model's own (18 s for MusicGen's 30 s window, 2 s for AudioGen)."""
        if not duration > 0:
            raise ConfigError(f"duration must be > 0 seconds, got {duration}")
        if extend_stride is None:
            extend_stride = self.config.extend_stride
        if not 0 < extend_stride < self.max_duration:
            raise ConfigError(f"extend_stride must be in (0, max_duration={self.max_duration}), got {extend_stride}")
        self.generation_params = GenerationParams(
            use_sampling=use_sampling, temperature=temperature, top_k=top_k, top_p=top_p,
            cfg_coef=cfg_coef, two_step_cfg=two_step_cfg,
        )
        self.duration = float(duration)
        self.extend_stride = float(extend_stride)
        self.seed = seed

    def set_custom_progress_callback(self, callback: Callable[[int, int], None] | None = None) -> None:
        """callback(generated_steps, total_steps), called after every step."""
        self._progress_callback = callback

    # -- generation ------------------------------------------------------------------------------------
    def generate(
        self, descriptions: Sequence[str | None], progress: bool = False, return_tokens: bool = False,
        seed: int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """One output per description; float audio [B, C, T] (and codes [B, K, F])."""
        rows = _check_descriptions(descriptions)
        tokens = self.generate_tokens(rows, progress=progress, seed=seed)
        return self._finish(tokens, return_tokens)

    def generate_unconditional(
        self, num_samples: int, progress: bool = False, return_tokens: bool = False, seed: int | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Samples from the null condition only (no text)."""
        if num_samples < 1:
            raise ConfigError(f"num_samples must be >= 1, got {num_samples}")
        tokens = self.generate_tokens([None] * num_samples, progress=progress, seed=seed)
        return self._finish(tokens, return_tokens)

    def generate_continuation(
        self, prompt: torch.Tensor, prompt_sample_rate: int, descriptions: Sequence[str | None] | None = None,
        progress: bool = False, return_tokens: bool = False, seed: int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Continue `prompt` ([C, T] or [B, C, T] audio). The output includes the prompt, as audiocraft's."""
        rows, codes = self._prompt_codes(prompt, prompt_sample_rate, descriptions)
        tokens = self.generate_tokens(rows, prompt_tokens=codes, progress=progress, seed=seed)
        return self._finish(tokens, return_tokens)

    def generate_with_chroma(
        self, descriptions: Sequence[str | None], melody_wavs: Any, melody_sample_rate: int,
        progress: bool = False, return_tokens: bool = False, seed: int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Follow the melody (chroma) of `melody_wavs`: [B, C, T], [C, T], or a list of [C, T] / None."""
        rows = _check_descriptions(descriptions)
        melodies = self._melody_list(melody_wavs, len(rows))
        tokens = self.generate_tokens(rows, melodies=melodies, melody_sample_rate=melody_sample_rate,
                                      progress=progress, seed=seed)
        return self._finish(tokens, return_tokens)

    def generate_stream(
        self, descriptions: Sequence[str | None], chunk_seconds: float = 0.5, progress: bool = False,
        seed: int | None = None, prompt: torch.Tensor | None = None, prompt_sample_rate: int | None = None,
        melody_wavs: Any = None, melody_sample_rate: int | None = None,
    ) -> Iterator[torch.Tensor]:
        """Yield float audio [B, C, n] while the tokens are generated, each piece once about
        `chunk_seconds` of new frames are final. Joined along time the pieces are `generate`'s
        output for the same seed (`generate_continuation` with `prompt`, `generate_with_chroma` with
        `melody_wavs`), to float rounding: the codec decodes incrementally (codec/streaming.py)."""
        if not chunk_seconds > 0:
            raise ConfigError(f"chunk_seconds must be > 0, got {chunk_seconds}")
        if prompt is not None and melody_wavs is not None:
            raise ConfigError("give a prompt or melody_wavs, not both")
        codes = melodies = None
        if prompt is not None:
            rows, codes = self._prompt_codes(prompt, prompt_sample_rate, descriptions)
        else:
            rows = _check_descriptions(descriptions)
        if melody_wavs is not None:
            melodies = self._melody_list(melody_wavs, len(rows))
        chunk = max(1, round(chunk_seconds * self.frame_rate))
        decoder = DecodeStream(self.codec)
        pending: list[torch.Tensor] = []
        for piece in self._token_pieces(rows, codes, melodies, melody_sample_rate, None, progress, seed):
            pending.append(piece)
            if sum(p.shape[-1] for p in pending) >= chunk:
                audio = decoder.step(torch.cat(pending, dim=-1))
                pending = []
                if audio is not None and audio.shape[-1]:
                    yield audio
        audio = decoder.finish(torch.cat(pending, dim=-1) if pending else None)
        if audio.shape[-1]:
            yield audio

    def generate_tokens(
        self,
        descriptions: list[str | None],
        prompt_tokens: torch.Tensor | None = None,
        melodies: list[Any] | None = None,
        melody_sample_rate: int | None = None,
        attributes: dict[str, list[Any]] | None = None,
        progress: bool = False,
        seed: int | None = None,
    ) -> torch.Tensor:
        """Codes [B, K, F] for `duration` seconds (prompt included), with a sliding window beyond
        `max_duration`. `attributes` feeds extra conditioners (e.g. a genre lookup table) by name."""
        return torch.cat(list(self._token_pieces(descriptions, prompt_tokens, melodies, melody_sample_rate,
                                                 attributes, progress, seed)), dim=-1)

    def _token_pieces(
        self, descriptions: list[str | None], prompt_tokens: torch.Tensor | None, melodies: list[Any] | None,
        melody_sample_rate: int | None, attributes: dict[str, list[Any]] | None, progress: bool, seed: int | None,
    ) -> Iterator[torch.Tensor]:
        """`generate_tokens` as a stream of final frames [B, K, n], in order (the prompt first)."""
        B = len(descriptions)
        total = int(self.duration * self.frame_rate)
        prompt_len = 0 if prompt_tokens is None else prompt_tokens.shape[-1]
        if prompt_len > total:
            raise ConfigError(
                f"the prompt ({prompt_len / self.frame_rate:.2f} s) is longer than the duration to generate "
                f"({self.duration:.2f} s); raise duration"
            )
        window = int(min(self.duration, self.max_duration) * self.frame_rate)
        if prompt_len > window:
            raise ConfigError(
                f"the prompt ({prompt_len / self.frame_rate:.2f} s) is longer than the model's window "
                f"({self.max_duration:g} s); shorten it"
            )
        windows = self._windows(total, prompt_len)
        generator = self._generator(seed)
        params = self.generation_params
        if all(d is None for d in descriptions) and melodies is None and not attributes:
            # Unconditional: the rows *are* the null condition, so guidance would compare a thing
            # with itself (audiocraft does, for the same result); skip the second half of the batch.
            params = params.replace(cfg_coef=1.0)
        melody_rows = self._melody_rows(melodies, melody_sample_rate, B)
        tracker = GenerationProgress(sum(self._steps(w) for w in windows), progress, self._progress_callback)
        done_steps = 0
        prompt = None if prompt_tokens is None else prompt_tokens.to(self.device)
        static = None if self.cuda_graph else False
        try:
            for i, (offset, _plen, gen_len) in enumerate(windows):
                cond, null = self._conditions(descriptions, melody_rows, offset, attributes, len(windows) > 1)
                window: list[torch.Tensor] = []
                for piece in stream_codes(self.lm, gen_len, cond, params, prompt=prompt, generator=generator,
                                          null_conditions=null, progress=tracker.window(done_steps), static=static):
                    # A window's first piece is its prompt: the user's (part of the output) for the
                    # first window, the previous window's tail (already yielded) for the others.
                    if window or prompt is None or prompt.shape[-1] == 0 or i == 0:
                        yield piece
                    window.append(piece)
                done_steps += self._steps((offset, _plen, gen_len))
                prompt = torch.cat(window, dim=-1)[..., int(self.extend_stride * self.frame_rate):]
        finally:
            tracker.close()

    def _prompt_codes(
        self, prompt: Any, sample_rate: int | None, descriptions: Sequence[str | None] | None
    ) -> tuple[list[str | None], torch.Tensor]:
        """Check a continuation prompt ([C, T] or [B, C, T] audio) and encode it: (rows, codes)."""
        from ..audio import convert_channels, resample

        if not isinstance(prompt, torch.Tensor):
            raise ConfigError("prompt must be a torch.Tensor of audio, shaped [C, T] or [B, C, T]")
        if prompt.dim() == 2:
            prompt = prompt[None]
        if prompt.dim() != 3 or prompt.shape[-1] == 0:
            raise ConfigError(f"prompt must be [C, T] or [B, C, T] audio, got shape {tuple(prompt.shape)}")
        if not sample_rate or int(sample_rate) <= 0:
            raise ConfigError(f"prompt_sample_rate must be a positive integer, got {sample_rate}")
        rows = [None] * prompt.shape[0] if descriptions is None else _check_descriptions(descriptions)
        if len(rows) != prompt.shape[0]:
            raise ConfigError(f"{len(rows)} descriptions for {prompt.shape[0]} prompts: give one per prompt")
        wav = resample(convert_channels(prompt.float(), self.audio_channels), int(sample_rate), self.sample_rate)
        codes, _ = self.codec.encode(wav.to(self.device))
        return rows, codes

    def _melody_list(self, melody_wavs: Any, count: int) -> list[Any]:
        if not self.supports_melody:
            raise ConfigError(f"model {self.name} has no melody (chroma) conditioner; use a melody model")
        if isinstance(melody_wavs, torch.Tensor):
            melody_wavs = [melody_wavs] if melody_wavs.dim() <= 2 else list(melody_wavs)
        melodies = list(melody_wavs)
        if len(melodies) != count:
            raise ConfigError(f"{len(melodies)} melodies for {count} descriptions: give one per description")
        return melodies

    def prepare_conditions(
        self, descriptions: Sequence[str | None], melodies: list[Any] | None = None,
        melody_sample_rate: int | None = None, attributes: dict[str, list[Any]] | None = None,
    ) -> tuple[Conditions, Conditions]:
        """The (conditional, null) condition tensors the LM sees for a batch (first window)."""
        rows = _check_descriptions(descriptions)
        return self._conditions(rows, self._melody_rows(melodies, melody_sample_rate, len(rows)), 0, attributes, False)

    # -- internals ----------------------------------------------------------------------------------------
    def _windows(self, total: int, prompt_len: int) -> list[tuple[int, int, int]]:
        """(offset in frames, prompt frames, frames to produce including the prompt) per window,
        following audiocraft: each next window is prompted with the last duration-stride seconds."""
        if self.duration <= self.max_duration:
            return [(0, prompt_len, total)]
        stride = int(self.extend_stride * self.frame_rate)
        window = int(self.max_duration * self.frame_rate)
        windows = []
        offset = 0
        while offset + prompt_len < total:
            # Whole frames throughout: a window computed from seconds could round below the prompt
            # it inherits and leave nothing (or less than nothing) to generate.
            gen_len = min(total - offset, window)
            windows.append((offset, prompt_len, gen_len))
            prompt_len = gen_len - stride
            offset += stride
        return windows

    def _steps(self, window: tuple[int, int, int]) -> int:
        _, plen, gen_len = window
        pattern = self.lm.cfg.make_pattern(gen_len)
        return pattern.num_steps - pattern.first_step_with_time(plen)

    def _generator(self, seed: int | None) -> torch.Generator:
        seed = self.seed if seed is None else seed
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())  # follows torch.manual_seed like audiocraft
        gen = torch.Generator(device=self.device)
        gen.manual_seed(int(seed))
        return gen

    def _melody_rows(self, melodies: list[Any] | None, sample_rate: int | None, batch: int) -> list[Any] | None:
        if melodies is None:
            return None
        rows = []
        for i, m in enumerate(melodies):
            if m is None:
                rows.append(None)
                continue
            wav = torch.as_tensor(m).float()
            if wav.dim() == 1:
                wav = wav[None]
            if wav.dim() != 2 or wav.shape[-1] == 0:
                raise ConfigError(f"melody {i} must be [C, T] audio, got shape {tuple(wav.shape)}")
            if not sample_rate or sample_rate <= 0:
                raise ConfigError(f"melody_sample_rate must be a positive integer, got {sample_rate}")
            rows.append((wav, int(sample_rate)))
        return rows

    def _conditions(
        self, descriptions: list[str | None], melody_rows: list[Any] | None, offset: int,
        attributes: dict[str, list[Any]] | None, loop_melody: bool,
    ) -> tuple[Conditions, Conditions]:
        """Conditional and null conditions, computed in one batch per conditioner (so both halves
        share the padding length, as in audiocraft and transformers)."""
        B = len(descriptions)
        attributes = attributes or {}
        tensors = {}
        for attr, cond in self.conditioners.items():
            kind = conditioner_type(cond)
            if kind == "chroma":
                rows = [self._melody_window(r, offset, loop_melody) for r in melody_rows] if melody_rows else [None] * B
            elif attr in attributes:
                rows = list(attributes[attr])
            elif kind in TEXT_TYPES:
                rows = list(descriptions)
            else:
                rows = [None] * B
            if len(rows) != B:
                raise ConfigError(f"attribute {attr!r} has {len(rows)} rows, expected {B}")
            with torch.no_grad():
                out = cond.condition(rows + [None] * B)
            tensors[attr] = out.to(self.device, self.lm.dtype)
        fused = self.fuser(tensors)

        def half(x: Any, part: int) -> Any:
            if x is None:
                return None
            if isinstance(x, torch.Tensor):
                return x[part * B:(part + 1) * B]
            return type(x)(x.embeddings[part * B:(part + 1) * B], x.mask[part * B:(part + 1) * B])

        cond = Conditions(half(fused.cross, 0), half(fused.prefix, 0), half(fused.sum, 0))
        null = Conditions(half(fused.cross, 1), half(fused.prefix, 1), half(fused.sum, 1))
        return cond, null

    def _melody_window(self, row: Any, offset: int, loop: bool) -> Any:
        """The melody seen by the window starting at `offset` frames. With a sliding window,
        audiocraft loops the melody over the whole output and gives each window its max_duration
        slice; a single window sees the melody as given."""
        if row is None or not loop:
            return row
        wav, sr = row
        start = int(offset / self.frame_rate * sr)
        positions = torch.arange(start, start + int(self.max_duration * sr)) % wav.shape[-1]
        return wav[..., positions], sr

    def _finish(self, tokens: torch.Tensor, return_tokens: bool) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            wav = self.codec.decode(tokens)
        wav = wav.float()
        return (wav, tokens) if return_tokens else wav


def _parse_dtype(dtype: str | torch.dtype) -> torch.dtype:
    names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if isinstance(dtype, torch.dtype) and dtype in names.values():
        return dtype
    if isinstance(dtype, str) and dtype.lower() in names:
        return names[dtype.lower()]
    raise ConfigError(f"unsupported dtype {dtype!r}; use float32, bfloat16 or float16")


def _check_descriptions(descriptions: Sequence[str | None]) -> list[str | None]:
    if isinstance(descriptions, str):
        raise ConfigError("descriptions must be a list of strings (one per output), not a single string")
    rows = list(descriptions)
    if not rows:
        raise ConfigError("descriptions is empty: give at least one description (None for unconditional)")
    for i, d in enumerate(rows):
        if d is not None and not isinstance(d, str):
            raise ConfigError(f"description {i} must be a string or None, got {type(d).__name__}")
    return rows


def describe(model: MusicGen) -> str:
    """One line about a loaded model (for the CLI and logs)."""
    lm = model.lm.cfg
    n = model.lm.num_parameters()
    params = f"{n / 1e6:.1f} M" if n >= 1e6 else f"{n / 1e3:.0f} k"
    kind = model.lm.quantization or str(model.lm.dtype).replace("torch.", "")
    return (f"{model.name}: {params}-parameter LM ({lm.num_layers} layers, dim {lm.dim}, {lm.n_q} codebooks, {kind}), "
            f"{model.sample_rate} Hz, {model.audio_channels} channel(s), max {model.max_duration:g} s per window")


__all__ = ["MusicGen", "MusicGenConfig", "WavecraftError", "describe"]
