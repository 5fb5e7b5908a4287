"""Exact streaming for the SEANet codec: feed codes (or audio) piece by piece, get output whose
concatenation equals the one-pass result.

Every layer gets a small state object (codec/stream_states.py) with `step(x)` (consume new input,
emit the outputs that no future input can change) and `flush()` (end of stream: apply the right
padding, emit the rest); this module chains them, runs the cheap wide layers next to the audio
over sub-pieces, gathers runs of frames for the LSTM offline, and wraps it all as
`StreamingEncoder` / `StreamingDecoder`. This works for non-causal models too (MusicGen's 32 kHz
codec): they simply emit later, by the look-ahead of their convolutions. Group norm (EnCodec
48 kHz) and renormalised or chunked encoding need the whole signal and are refused.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import WavecraftError
from .layout import join
from .seanet import ELU, LSTMBlock, NormConv1d, NormConvTranspose1d
from .stream_states import Maybe, _chain_flush, _chain_step, _LSTMState, _make_chain, _State

# Sub-pieces. The layers next to the audio have the smallest weights and the largest activations:
# at 32 kHz with 64 channels a 2 s piece makes 16 MB tensors, each a fresh allocation that the C
# library maps from the system and the kernel faults in 4 KB at a time (~50,000 faults per 10 s of
# audio, one encode or decode in six of its time, measured on the 2-core development machine), and
# none of them stays in a core's L2. Those layers run over sub-pieces whose widest activation holds
# SUB_PIECE_FLOATS numbers, which the allocator recycles without faults; the deeper layers, whose
# weights are read once per call, keep whole pieces.
SUB_PIECE_FLOATS = 768 * 1024  # 3 MB of fp32: the widest activation of one sub-piece
SUB_PIECE_WEIGHTS = 512 * 1024  # the most weights the sub-piece layers may hold together (2 MB: one L2)


class _SubPieces:
    """Runs a chain of layers over slices of at most `length` samples of each input piece."""

    def __init__(self, chain: list[_State], length: int) -> None:
        self.chain, self.length = chain, length

    def step(self, x: Maybe) -> Maybe:
        if x is None or x.shape[-1] <= self.length:
            return _chain_step(self.chain, x)
        return join([_chain_step(self.chain, x[..., start : start + self.length])
                     for start in range(0, x.shape[-1], self.length)])

    def flush(self) -> Maybe:
        return _chain_flush(self.chain)


def _weights(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _weight_shape(conv: NormConv1d | NormConvTranspose1d) -> torch.Size:
    return (conv.weight if conv.weight is not None else conv.weight_v).shape  # no weight-norm folding


def _audio_side_chain(modules: list[nn.Module], audio_first: bool, on_cpu: bool) -> list[_State]:
    """States for an encoder's (`audio_first`) or decoder's layers, the audio side's cheap, wide
    layers gathered into one `_SubPieces` (CPU only: elsewhere more, smaller calls cost more)."""
    if not on_cpu:
        return _make_chain(modules)
    n = len(modules)
    order = range(n) if audio_first else range(n - 1, -1, -1)
    cut, held = 0, 0  # how many modules from the audio side go in the sub-piece chain
    for taken, i in enumerate(order, start=1):
        held += _weights(modules[i])
        if isinstance(modules[i], LSTMBlock) or held > SUB_PIECE_WEIGHTS:
            break
        rest = taken if audio_first else n - taken  # the index where the two parts meet
        # never cut between an ELU and the convolution it is fused with
        if not (0 < rest < n and isinstance(modules[rest - 1], ELU) and isinstance(modules[rest], NormConv1d)):
            cut = taken
    if cut == 0:
        return _make_chain(modules)
    inner = modules[:cut] if audio_first else modules[n - cut :]
    rate, widest = 1.0, 1.0  # floats per sample of the inner chain's input
    for module in inner:
        if isinstance(module, NormConv1d):
            cout, cin, _ = _weight_shape(module)
            widest = max(widest, rate * cin)
            rate /= module.stride
            widest = max(widest, rate * cout)
        elif isinstance(module, NormConvTranspose1d):
            cin, cout, _ = _weight_shape(module)
            widest = max(widest, rate * cin)
            rate *= module.stride
            widest = max(widest, rate * cout)
    sub = _SubPieces(_make_chain(inner), max(1, int(SUB_PIECE_FLOATS / widest)))
    return [sub, *_make_chain(modules[cut:])] if audio_first else [*_make_chain(modules[: n - cut]), sub]


# Offline (a whole file encoded or decoded in pieces, no latency to keep), the LSTM runs over up to
# this many frames at a time (30 s at 50 Hz: 6 MB of activations at 1024 channels). Run piece by
# piece, each 2 s piece switches between the layers' recurrent and input matrices (64 MB at 1024
# units, more than the L3), so each layer starts cold from memory every piece, and its input
# projection is a 100-row product; gathered, an encode of 10 s took 0.65 s against 0.69 s
# (best of ten alternations; median 0.72 against 0.83 s) on the 2-core development machine.
LSTM_RUN_FRAMES = 1500


class _Gather:
    """Holds pieces until it has `frames` samples, then passes them on joined."""

    def __init__(self, frames: int) -> None:
        self.frames, self.parts = frames, []

    def step(self, x: Maybe) -> Maybe:
        if x is None or x.shape[-1] == 0:
            return None
        self.parts.append(x)
        return self.flush() if sum(p.shape[-1] for p in self.parts) >= self.frames else None

    def flush(self) -> Maybe:
        joined, self.parts = join(self.parts), []
        return joined


def _gather_at_lstm(chain: list[_State], frames: int, split: int | None) -> list[_State]:
    """The chain with a `_Gather` before its LSTM; the layers after it, if `split`, over slices
    of that many frames again (the decoder's upsampling layers: bounded activations)."""
    at = next((i for i, state in enumerate(chain) if isinstance(state, _LSTMState)), None)
    if at is None:
        return chain
    rest = chain[at + 1 :]
    return [*chain[:at], _Gather(frames), chain[at], *([_SubPieces(rest, split)] if split and rest else rest)]


class StreamingDecoder:
    """codes [B, K, f] pieces -> audio pieces [B, C, n]; `flush()` at the end of the stream.
    Concatenating every output equals `codec.decode(all_codes, scale)`."""

    def __init__(self, codec: nn.Module, scale: Tensor | None = None, *, offline: bool = False) -> None:
        """`offline`: a whole file decoded in pieces (`codec.decode`), not a live stream: the LSTM
        runs over LSTM_RUN_FRAMES at a time, which delays the first audio by as much."""
        if codec.config.chunk_length is not None:
            raise WavecraftError(f"codec {codec.name} decodes in overlapping chunks and cannot stream")
        if codec.config.renormalize and scale is None:
            raise WavecraftError(f"codec {codec.name} renormalises: pass the scale [B, 1] from encode")
        self.codec = codec
        self.scale = None if scale is None else scale.reshape(-1, 1, 1)
        self.chain = _audio_side_chain(list(codec.decoder.layers), False, codec._device().type == "cpu")
        if offline:
            self.chain = _gather_at_lstm(self.chain, LSTM_RUN_FRAMES, int(codec.stream_frames or LSTM_RUN_FRAMES))
        self.batch: int | None = None
        self.finished = False

    def _finish(self, y: Maybe) -> Tensor:
        if y is None:
            return torch.zeros(self.batch or 1, self.codec.channels, 0, device=self.codec._device())
        y = y.contiguous()  # channels last inside
        return y * self.scale if self.scale is not None else y

    def step(self, codes: Tensor) -> Tensor:
        if self.finished:
            raise WavecraftError("this streaming decoder was flushed; start a new one with codec.decode_stream()")
        codes = self.codec._check_codes(codes)
        if self.batch is not None and codes.shape[0] != self.batch:
            raise WavecraftError(f"streaming decode: batch size changed from {self.batch} to {codes.shape[0]}")
        self.batch = codes.shape[0]
        with torch.no_grad():
            return self._finish(_chain_step(self.chain, self.codec.quantizer.decode(codes)))

    def flush(self) -> Tensor:
        self.finished = True
        with torch.no_grad():
            return self._finish(_chain_flush(self.chain))


class StreamingEncoder:
    """audio pieces [B, C, t] -> code pieces [B, K, f]; `flush()` at the end. Concatenating every
    output equals `codec.encode(all_audio)[0]` (models without renormalisation or chunking)."""

    def __init__(self, codec: nn.Module, *, offline: bool = False) -> None:
        """`offline`: as for StreamingDecoder (codes come out LSTM_RUN_FRAMES at a time)."""
        if codec.config.renormalize or codec.config.chunk_length is not None:
            raise WavecraftError(f"codec {codec.name} renormalises or chunks its input and cannot encode in a stream")
        self.codec = codec
        self.n_q = codec.num_codebooks
        self.chain = _audio_side_chain(list(codec.encoder.layers), True, codec._device().type == "cpu")
        if offline:
            self.chain = _gather_at_lstm(self.chain, LSTM_RUN_FRAMES, None)
        self.batch: int | None = None
        self.finished = False

    def _codes(self, latent: Maybe) -> Tensor:
        if latent is None:
            return torch.zeros(self.batch or 1, self.n_q, 0, dtype=torch.long, device=self.codec._device())
        return self.codec.quantizer.encode(latent, self.n_q)

    def step(self, wav: Tensor) -> Tensor:
        if self.finished:
            raise WavecraftError("this streaming encoder was flushed; start a new one with codec.encode_stream()")
        wav = self.codec._check_wav(wav)
        if self.batch is not None and wav.shape[0] != self.batch:
            raise WavecraftError(f"streaming encode: batch size changed from {self.batch} to {wav.shape[0]}")
        self.batch = wav.shape[0]
        with torch.no_grad():
            return self._codes(_chain_step(self.chain, wav))

    def flush(self) -> Tensor:
        self.finished = True
        with torch.no_grad():
            return self._codes(_chain_flush(self.chain))
