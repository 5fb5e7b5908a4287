"""`Codec`: SEANet encoder + residual vector quantizer + SEANet decoder, with the public API.

Shapes (B batch, C channels, T samples, K codebooks, F frames, D latent width, N chunks):
    encode(wav [B, C, T]) -> codes long [B, K, F], scale [B, N] float or None
    decode(codes, scale, length=None) -> wav [B, C, T']
Unchunked models: F = ceil(T / hop), T' = F * hop (pass `length=T` to trim), N = 1 and scale is
None unless the model renormalises. Chunked models (EnCodec 48 kHz): the input is cut into chunks
of `chunk_length` samples starting every `chunk_stride` samples (offsets 0, S, 2S, ... < T, the
last ones shorter), each chunk is renormalised and encoded on its own, and `codes` is the
concatenation of the chunks' codes along time; see `chunk_layout`. Decoding overlap-adds the
decoded chunks with triangular weights, as EnCodec does.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from ..errors import WavecraftError
from .config import CodecConfig
from .quantizer import ResidualVectorQuantizer
from .seanet import SEANetDecoder, SEANetEncoder

if TYPE_CHECKING:
    from .streaming import StreamingDecoder, StreamingEncoder

# Codebook statistics that only matter to training; left out of the identity hash so the same
# weights hash the same whether or not a checkpoint kept them.
_TRAINING_BUFFERS = ("cluster_size", "embed_avg", "inited")


@dataclass
class CodecTrainOutput:
    audio: Tensor  # reconstruction [B, C, T], same length as the input
    codes: Tensor  # [B, K, F]
    penalty: Tensor  # commitment loss (scalar)
    bandwidth: float  # kbps for the codebooks used in this batch


@dataclass(frozen=True)
class Chunk:
    offset: int  # first sample of the chunk in the input
    samples: int  # chunk length in samples
    frame_offset: int  # first frame of the chunk in `codes`
    frames: int  # number of code frames


class Codec(nn.Module):
    def __init__(self, config: CodecConfig, name: str = "codec") -> None:
        super().__init__()
        self.config = config
        self.name = name
        self.encoder = SEANetEncoder(config)
        self.decoder = SEANetDecoder(config)
        self.quantizer = ResidualVectorQuantizer(
            config.dimension, config.bins, config.n_q, q_dropout=config.q_dropout,
            commitment_weight=config.commitment_weight, decay=config.decay, epsilon=config.epsilon,
            kmeans_init=config.kmeans_init, kmeans_iters=config.kmeans_iters,
            threshold_ema_dead_code=config.threshold_ema_dead_code,
        )
        self._num_codebooks = config.n_q  # all codebooks (highest bitrate) unless told otherwise
        self._hash: str | None = None

    # Properties users know from audiocraft's CompressionModel -----------------------------------
    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def channels(self) -> int:
        return self.config.channels

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    @property
    def frame_rate(self) -> float:
        return self.config.frame_rate

    @property
    def cardinality(self) -> int:
        return self.config.bins

    @property
    def total_codebooks(self) -> int:
        return self.config.n_q

    @property
    def num_codebooks(self) -> int:
        return self._num_codebooks

    @property
    def bandwidth(self) -> float:
        """Bitrate in kbps at the current number of codebooks."""
        return self.quantizer.bandwidth(self._num_codebooks, self.frame_rate)

    @property
    def causal(self) -> bool:
        return self.config.causal

    def set_fast(self, enabled: bool = True) -> None:
        """Use (default) or not the matrix-multiply forms of some convolutions at inference
        (codec/seanet.py): same outputs to float rounding, faster on CPU."""
        for module in self.modules():
            if hasattr(module, "fast"):
                module.fast = bool(enabled)

    def set_num_codebooks(self, n: int) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= self.total_codebooks:
            raise WavecraftError(
                f"number of codebooks must be an integer from 1 to {self.total_codebooks} for codec "
                f"{self.name}, got {n!r}"
            )
        self._num_codebooks = n

    def available_bandwidths(self) -> list[float]:
        """Every bitrate this codec can encode at (one per number of codebooks), in kbps."""
        return [round(self.quantizer.bandwidth(n, self.frame_rate), 6) for n in range(1, self.total_codebooks + 1)]

    def set_bandwidth(self, kbps: float) -> None:
        """Use as many codebooks as fit in `kbps` (the references' rule: floor(kbps / kbps per codebook))."""
        per_q = self.quantizer.bandwidth(1, self.frame_rate)
        try:
            kbps = float(kbps)
        except (TypeError, ValueError):
            kbps = float("nan")
        n = math.floor(kbps / per_q + 1e-6) if math.isfinite(kbps) else 0
        if not 1 <= n <= self.total_codebooks:
            trained = f" (trained for {list(self.config.target_bandwidths)})" if self.config.target_bandwidths else ""
            raise WavecraftError(
                f"bandwidth {kbps:g} kbps is out of range for codec {self.name}: it supports "
                f"{per_q:g} to {per_q * self.total_codebooks:g} kbps in steps of {per_q:g}{trained}"
            )
        self._num_codebooks = n

    # Identity --------------------------------------------------------------------------------
    def weights_hash(self) -> str:
        """sha256 (hex) over the inference weights in sorted key order, as float32; cached."""
        if self._hash is None:
            h = hashlib.sha256()
            for key, tensor in sorted(self.state_dict().items()):
                if key.rsplit(".", 1)[-1] in _TRAINING_BUFFERS:
                    continue
                t = tensor.detach().to("cpu")
                if t.is_floating_point():
                    t = t.float()
                h.update(f"{key}:{tuple(t.shape)}:{t.dtype};".encode())
                h.update(t.contiguous().numpy().tobytes())
            self._hash = h.hexdigest()
        return self._hash

    # Validation ------------------------------------------------------------------------------
    def _param_dtype(self) -> torch.dtype:
        return self.quantizer.layers[0].embed.dtype

    def _device(self) -> torch.device:
        return self.quantizer.layers[0].embed.device

    def _check_wav(self, wav: Tensor) -> Tensor:
        if not isinstance(wav, Tensor):
            raise WavecraftError(f"codec.encode expects a torch.Tensor [B, C, T], got {type(wav).__name__}")
        if wav.dim() != 3:
            hint = " (add the batch axis with wav[None])" if wav.dim() == 2 else ""
            raise WavecraftError(f"codec.encode expects audio shaped [B, C, T], got {tuple(wav.shape)}{hint}")
        if not wav.is_floating_point():
            raise WavecraftError(f"codec.encode expects float audio in [-1, 1], got dtype {wav.dtype}")
        if wav.shape[1] != self.channels:
            raise WavecraftError(
                f"codec {self.name} expects {self.channels} channel(s), got {wav.shape[1]}; convert the "
                f"audio first (e.g. wavecraft.audio's channel conversion)"
            )
        if wav.shape[0] < 1 or wav.shape[-1] < 1:
            raise WavecraftError(f"codec.encode got empty audio of shape {tuple(wav.shape)}")
        if not torch.isfinite(wav).all():
            raise WavecraftError("codec.encode: the audio contains NaN or infinite values")
        return wav.to(self._device(), self._param_dtype())

    def _check_codes(self, codes: Tensor) -> Tensor:
        if not isinstance(codes, Tensor) or codes.dim() != 3:
            shape = tuple(codes.shape) if isinstance(codes, Tensor) else type(codes).__name__
            raise WavecraftError(f"codec.decode expects codes shaped [B, K, F], got {shape}")
        if codes.is_floating_point() or codes.is_complex() or codes.dtype == torch.bool:
            raise WavecraftError(f"codec.decode expects integer codes, got dtype {codes.dtype}")
        B, K, F = codes.shape
        if B < 1 or F < 1 or not 1 <= K <= self.total_codebooks:
            raise WavecraftError(
                f"codec.decode: codes shape {tuple(codes.shape)} needs B >= 1, F >= 1 and 1 <= K <= "
                f"{self.total_codebooks} for codec {self.name}"
            )
        low, high = int(codes.min()), int(codes.max())
        if low < 0 or high >= self.cardinality:
            raise WavecraftError(
                f"codec.decode: code values must lie in [0, {self.cardinality - 1}], found {low}..{high}"
            )
        return codes.to(self._device(), torch.long)

    # Chunk layout ----------------------------------------------------------------------------
    def num_frames(self, length: int) -> int:
        """Code frames produced for `length` input samples."""
        return sum(c.frames for c in self.chunk_layout(length))

    def chunk_layout(self, length: int) -> list[Chunk]:
        """How `length` samples are cut into chunks and where each chunk's frames sit in `codes`.
        Unchunked models have a single chunk covering everything."""
        L, S, hop = self.config.chunk_length, self.config.chunk_stride, self.hop_length
        if L is None or S is None:
            return [Chunk(0, length, 0, -(-length // hop))]
        chunks, frame = [], 0
        for offset in range(0, length, S):
            samples = min(L, length - offset)
            frames = -(-samples // hop)
            chunks.append(Chunk(offset, samples, frame, frames))
            frame += frames
        return chunks

    def _layout_from_codes(self, frames: int, n_chunks: int | None) -> list[Chunk]:
        """Chunk layout when the input length is unknown: every chunk full except the last one
        (always true for the released 48 kHz model unless the input is a few samples longer than
        a multiple of the stride; pass `length` to decode for those)."""
        L, S, hop = self.config.chunk_length, self.config.chunk_stride, self.hop_length
        assert L is not None and S is not None
        per_chunk = -(-L // hop)
        n = n_chunks if n_chunks is not None else -(-frames // per_chunk)
        last = frames - (n - 1) * per_chunk
        if n < 1 or not 1 <= last <= per_chunk:
            raise WavecraftError(
                f"codec.decode: {frames} frames do not split into {n} chunk(s) of at most {per_chunk} frames; "
                f"pass length= (the number of input samples) so the chunk layout can be computed"
            )
        return [Chunk(i * S, L, i * per_chunk, per_chunk if i < n - 1 else last) for i in range(n)]

    # Inference -------------------------------------------------------------------------------
    def _renormalize(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        if not self.config.renormalize:
            return x, None
        mono = x.sum(1, keepdim=True) / x.shape[1]
        scale = mono.pow(2).mean(dim=-1, keepdim=True).sqrt() + 1e-8  # [B, 1, 1]
        return x / scale, scale.view(-1, 1)

    def encode_latent(self, wav: Tensor) -> tuple[Tensor, Tensor | None]:
        """Unquantized encoder output [B, D, F] (whole input in one piece, no chunking) and the
        renormalisation scale [B, 1] or None."""
        with torch.no_grad():
            x, scale = self._renormalize(self._check_wav(wav))
            return self.encoder(x), scale

    def decode_latent(self, codes: Tensor) -> Tensor:
        """Codes [B, K, F] -> quantized latent [B, D, F] (the sum of the codewords)."""
        with torch.no_grad():
            return self.quantizer.decode(self._check_codes(codes))

    def decode_from_latent(self, latent: Tensor, scale: Tensor | None = None) -> Tensor:
        """Latent [B, D, F] -> audio [B, C, F * hop], times `scale` [B, 1] if given."""
        with torch.no_grad():
            out = self.decoder(latent.to(self._device(), self._param_dtype()))
            return out * scale.view(-1, 1, 1) if scale is not None else out

    def encode(self, wav: Tensor) -> tuple[Tensor, Tensor | None]:
        """Audio [B, C, T] -> (codes long [B, num_codebooks, F], scale [B, N] or None)."""
        wav = self._check_wav(wav)
        B, T = wav.shape[0], wav.shape[-1]
        if self._in_pieces(-(-T // self.hop_length)) and not self.config.renormalize:
            return self._encode_in_pieces(wav), None
        layout = self.chunk_layout(T)
        codes: list[Tensor | None] = [None] * len(layout)
        scales: list[Tensor | None] = [None] * len(layout)
        with torch.no_grad():
            # Chunks of equal length run together, a few at a time (bounded activation memory).
            for size in sorted({c.samples for c in layout}):
                same = [i for i, c in enumerate(layout) if c.samples == size]
                for idx in _groups(same, B):
                    x = torch.cat([wav[..., layout[i].offset : layout[i].offset + size] for i in idx])
                    x, scale = self._renormalize(x)
                    q = self.quantizer.encode(self.encoder(x), self._num_codebooks)
                    for j, i in enumerate(idx):
                        codes[i] = q[j * B : (j + 1) * B]
                        if scale is not None:
                            scales[i] = scale[j * B : (j + 1) * B]
        all_codes = torch.cat(codes, dim=-1) if len(codes) > 1 else codes[0]
        scale_out = torch.cat(scales, dim=1) if self.config.renormalize else None
        return all_codes, scale_out

    def decode(self, codes: Tensor, scale: Tensor | None = None, length: int | None = None) -> Tensor:
        """Codes [B, K, F] (K <= total_codebooks) -> audio [B, C, T']; `length` trims to T samples
        and, for chunked models, fixes the chunk layout."""
        codes = self._check_codes(codes)
        B, _, F = codes.shape
        chunked = self.config.chunk_length is not None
        if length is not None:
            layout = self.chunk_layout(int(length))
            if sum(c.frames for c in layout) != F:
                raise WavecraftError(
                    f"codec.decode: {F} code frames do not match length={length} samples "
                    f"(expected {sum(c.frames for c in layout)} frames)"
                )
        elif chunked:
            layout = self._layout_from_codes(F, scale.shape[-1] if isinstance(scale, Tensor) and scale.dim() == 2 else None)
        else:
            layout = [Chunk(0, F * self.hop_length, 0, F)]
        scale = self._check_scale(scale, B, len(layout))
        if self._in_pieces(F):
            wav = self._decode_in_pieces(codes, scale)
            return wav if length is None else wav[..., : int(length)]
        with torch.no_grad():
            frames: list[Tensor | None] = [None] * len(layout)
            for n in sorted({c.frames for c in layout}):
                same = [i for i, c in enumerate(layout) if c.frames == n]
                for idx in _groups(same, B):
                    batch = torch.cat([codes[..., layout[i].frame_offset : layout[i].frame_offset + n] for i in idx])
                    out = self.decoder(self.quantizer.decode(batch))
                    if scale is not None:
                        out = out * torch.cat([scale[:, i] for i in idx]).view(-1, 1, 1)
                    for j, i in enumerate(idx):
                        frames[i] = out[j * B : (j + 1) * B]
            wav = _overlap_add(frames, self.config.chunk_stride) if chunked else frames[0]
        if length is not None:
            wav = wav[..., : int(length)]
        return wav

    def _check_scale(self, scale: Tensor | None, batch: int, n_chunks: int) -> Tensor | None:
        if not self.config.renormalize:
            if scale is not None:
                raise WavecraftError(f"codec {self.name} does not renormalise: decode takes scale=None")
            return None
        if scale is None:
            raise WavecraftError(
                f"codec {self.name} renormalises its input: decode needs the scale [B, {n_chunks}] returned by "
                f"encode (use torch.ones({batch}, {n_chunks}) to decode codes that have no scale)"
            )
        if not isinstance(scale, Tensor) or tuple(scale.shape) != (batch, n_chunks):
            shape = tuple(scale.shape) if isinstance(scale, Tensor) else type(scale).__name__
            raise WavecraftError(f"codec.decode: scale must be shaped [B, N] = [{batch}, {n_chunks}], got {shape}")
        if not scale.is_floating_point() or not torch.isfinite(scale).all():
            raise WavecraftError("codec.decode: scale must hold finite float values")
        return scale.to(self._device(), self._param_dtype())

    # Streaming -------------------------------------------------------------------------------
    # `encode` / `decode` of more frames than this run the streaming encoder / decoder over pieces
    # of this many frames (2 s at 50 Hz). Memory stays bounded by one piece's activations plus the
    # output (one pass over 10 minutes of 32 kHz audio would hold ~20 GB of activations), and it is
    # faster too: full-rate activations of a whole file are tens of MB each, every one a fresh
    # allocation the kernel must fault in (the layers next to the audio go further, over sub-pieces
    # of a few MB: streaming.SUB_PIECE_FLOATS). Same result to float rounding (~1e-7; the codes are
    # the same). None processes the input in one pass whatever its length.
    stream_frames: int | None = 100

    def _in_pieces(self, frames: int) -> bool:
        cfg = self.config
        streamable = cfg.chunk_length is None and cfg.norm != "time_group_norm" and cfg.pad_mode != "circular"
        return bool(self.stream_frames) and frames > int(self.stream_frames or 0) and streamable

    def _encode_in_pieces(self, wav: Tensor) -> Tensor:
        from .streaming import StreamingEncoder

        piece = int(self.stream_frames or 1) * self.hop_length
        encoder = StreamingEncoder(self, offline=True)
        codes = [encoder.step(wav[..., start : start + piece]) for start in range(0, wav.shape[-1], piece)]
        return torch.cat([*codes, encoder.flush()], dim=-1)

    def _decode_in_pieces(self, codes: Tensor, scale: Tensor | None) -> Tensor:
        from .streaming import StreamingDecoder

        B, _, F = codes.shape
        piece = int(self.stream_frames or F)
        decoder = StreamingDecoder(self, scale, offline=True)
        out = torch.empty(B, self.channels, F * self.hop_length, device=self._device(), dtype=self._param_dtype())
        filled = 0
        for start in range(0, F + piece, piece):  # one round past the end: the flush
            chunk = decoder.step(codes[..., start : start + piece]) if start < F else decoder.flush()
            out[..., filled : filled + chunk.shape[-1]] = chunk
            filled += chunk.shape[-1]
        assert filled == out.shape[-1], "streaming decode produced a different length"
        return out

    def decode_stream(self, scale: Tensor | None = None) -> "StreamingDecoder":
        """A stateful decoder: feed codes chunk by chunk, get audio whose concatenation equals
        `decode` of all the codes (see wavecraft.codec.streaming)."""
        from .streaming import StreamingDecoder

        return StreamingDecoder(self, scale)

    def encode_stream(self) -> "StreamingEncoder":
        """A stateful encoder: feed audio chunk by chunk, get codes equal to one-pass `encode`."""
        from .streaming import StreamingEncoder

        return StreamingEncoder(self)

    # Training --------------------------------------------------------------------------------
    def forward(self, wav: Tensor, n_q: int | None = None, quantize: bool = True) -> CodecTrainOutput:
        """Training pass: wav [B, C, T] -> reconstruction [B, C, T] + quantizer penalty. Gradients
        flow (straight-through the quantizer); codebooks update by EMA in train mode.

        quantize=False bypasses the quantizer (a plain autoencoder; codes are empty, penalty 0):
        a warm-up that lets encoder and decoder agree on a latent before k-means sees it."""
        T = wav.shape[-1]
        x, scale = self._renormalize(wav)
        latent = self.encoder(x)
        if quantize:
            q = self.quantizer(latent, self.frame_rate, n_q)
            latent, codes, penalty, bandwidth = q.quantized, q.codes, q.penalty, q.bandwidth
        else:
            codes = torch.zeros(latent.shape[0], 0, latent.shape[-1], dtype=torch.long, device=latent.device)
            penalty, bandwidth = latent.new_zeros(()), 0.0
        out = self.decoder(latent)
        if scale is not None:
            out = out * scale.view(-1, 1, 1)
        return CodecTrainOutput(out[..., :T], codes, penalty, bandwidth)


# At most this many rows (chunks x batch items) go through the encoder or decoder at once.
_MAX_CHUNK_ROWS = 8


def _groups(indices: list[int], batch: int) -> list[list[int]]:
    step = max(1, _MAX_CHUNK_ROWS // batch)
    return [indices[i : i + step] for i in range(0, len(indices), step)]


def _overlap_add(frames: list[Tensor], stride: int | None) -> Tensor:
    """Sum decoded chunks placed every `stride` samples, each weighted by a triangle peaking at its
    middle, divided by the summed weights: a linear cross-fade where chunks overlap."""
    assert stride is not None
    first = frames[0]
    # Usually the last chunk ends last; not always when chunk_length is not a multiple of the hop
    # (a chunk's decoded length is rounded up to whole frames), so take the furthest end.
    total = max(i * stride + f.shape[-1] for i, f in enumerate(frames))
    t = torch.linspace(0, 1, first.shape[-1] + 2, device=first.device, dtype=first.dtype)[1:-1]
    weight = 0.5 - (t - 0.5).abs()
    out = first.new_zeros(*first.shape[:-1], total)
    weight_sum = first.new_zeros(total)
    for i, frame in enumerate(frames):
        n = frame.shape[-1]
        out[..., i * stride : i * stride + n] += weight[:n] * frame
        weight_sum[i * stride : i * stride + n] += weight[:n]
    return out / weight_sum
