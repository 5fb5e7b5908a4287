"""`CodecConfig`: every hyper-parameter of the EnCodec-style codec, with the released shapes as presets.

Field names follow audiocraft's SEANet/RVQ vocabulary (ratios, n_filters, true_skip, bins, n_q ...);
the loaders translate Hugging Face and audiocraft configs into this one dataclass.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import Config
from ..errors import ConfigError

_NORMS = ("weight_norm", "time_group_norm", "none")
_PAD_MODES = ("reflect", "constant", "replicate", "circular")


@dataclass
class CodecConfig(Config):
    # Audio
    sample_rate: int = 24000
    channels: int = 1
    # SEANet encoder/decoder
    dimension: int = 128  # latent width (= codebook vector width)
    n_filters: int = 32
    ratios: tuple[int, ...] = (8, 5, 4, 2)  # decoder order; the encoder uses them reversed
    n_residual_layers: int = 1
    kernel_size: int = 7
    last_kernel_size: int = 7
    residual_kernel_size: int = 3
    dilation_base: int = 2
    compress: int = 2
    lstm_layers: int = 2
    causal: bool = True
    pad_mode: str = "reflect"
    norm: str = "weight_norm"  # weight_norm | time_group_norm (48 kHz EnCodec) | none
    true_skip: bool = False  # True: identity skip in residual blocks; False: 1x1 conv shortcut
    trim_right_ratio: float = 1.0
    final_activation: str | None = None  # None or "tanh"
    # Residual vector quantizer
    bins: int = 1024  # codebook size (cardinality)
    n_q: int = 32  # total number of codebooks
    target_bandwidths: tuple[float, ...] = ()  # the bitrates the model was trained for (kbps), informative
    # Renormalisation and chunked processing (EnCodec 48 kHz)
    renormalize: bool = False
    chunk_length_s: float | None = None
    overlap: float | None = None
    # Quantizer training
    decay: float = 0.99
    epsilon: float = 1e-5
    kmeans_init: bool = True
    kmeans_iters: int = 50
    threshold_ema_dead_code: float = 2.0
    commitment_weight: float = 1.0
    q_dropout: bool = False

    def __post_init__(self) -> None:
        if self.norm not in _NORMS:
            raise ConfigError(f"CodecConfig.norm must be one of {list(_NORMS)}, got {self.norm!r}")
        if self.pad_mode not in _PAD_MODES:
            raise ConfigError(f"CodecConfig.pad_mode must be one of {list(_PAD_MODES)}, got {self.pad_mode!r}")
        if self.final_activation not in (None, "tanh"):
            raise ConfigError(f"CodecConfig.final_activation must be null or 'tanh', got {self.final_activation!r}")
        if self.channels < 1 or self.sample_rate < 1 or self.n_q < 1 or not self.ratios:
            raise ConfigError("CodecConfig: sample_rate, channels, n_q must be positive and ratios non-empty")
        if self.bins < 2 or self.bins & (self.bins - 1):
            raise ConfigError(f"CodecConfig.bins must be a power of two, got {self.bins}")
        if (self.chunk_length_s is None) != (self.overlap is None):
            raise ConfigError("CodecConfig: chunk_length_s and overlap must be set together (or both null)")
        if not self.causal and self.trim_right_ratio != 1.0:
            raise ConfigError("CodecConfig: trim_right_ratio != 1.0 only makes sense for a causal model")
        self.ratios = tuple(int(r) for r in self.ratios)
        self.target_bandwidths = tuple(float(b) for b in self.target_bandwidths)

    # Derived quantities -------------------------------------------------------------------------
    @property
    def hop_length(self) -> int:
        return math.prod(self.ratios)

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def bits_per_codebook(self) -> int:
        return int(math.log2(self.bins))

    @property
    def chunk_length(self) -> int | None:
        """Samples per chunk for chunked models (EnCodec 48 kHz: 48000), else None."""
        return None if self.chunk_length_s is None else int(self.chunk_length_s * self.sample_rate)

    @property
    def chunk_stride(self) -> int | None:
        if self.chunk_length is None or self.overlap is None:
            return None
        return max(1, int((1.0 - self.overlap) * self.chunk_length))

    # Released shapes (REFERENCE.md section 1) ---------------------------------------------------
    @classmethod
    def preset(cls, name: str, **changes: object) -> "CodecConfig":
        """A released shape by name: encodec_24khz, encodec_32khz, encodec_48khz, audiogen_16khz, tiny."""
        presets = {
            "encodec_24khz": dict(
                sample_rate=24000, n_filters=32, ratios=(8, 5, 4, 2), causal=True, pad_mode="reflect",
                true_skip=False, bins=1024, n_q=32, target_bandwidths=(1.5, 3.0, 6.0, 12.0, 24.0),
            ),
            "encodec_32khz": dict(  # the MusicGen codec
                sample_rate=32000, n_filters=64, ratios=(8, 5, 4, 4), causal=False, pad_mode="constant",
                true_skip=True, bins=2048, n_q=4, target_bandwidths=(2.2,),
            ),
            "audiogen_16khz": dict(
                sample_rate=16000, n_filters=64, ratios=(8, 5, 4, 2), causal=False, pad_mode="constant",
                true_skip=True, bins=2048, n_q=4, target_bandwidths=(2.2,),
            ),
            "encodec_48khz": dict(
                sample_rate=48000, channels=2, n_filters=32, ratios=(8, 5, 4, 2), causal=False,
                pad_mode="reflect", norm="time_group_norm", true_skip=False, bins=1024, n_q=16,
                target_bandwidths=(3.0, 6.0, 12.0, 24.0), renormalize=True, chunk_length_s=1.0, overlap=0.01,
            ),
            # Small enough for unit tests: same structure, narrow layers.
            "tiny": dict(
                sample_rate=8000, dimension=16, n_filters=4, ratios=(4, 2), causal=True, bins=64, n_q=4,
                target_bandwidths=(),
            ),
        }
        if name not in presets:
            raise ConfigError(f"unknown codec preset {name!r}; choose one of {sorted(presets)}")
        values = {**presets[name], **changes}
        return cls(**values)  # type: ignore[arg-type]
