"""Audio file <-> .wcc file through a neural codec: the library behind `wavecraft compress/decompress`.

Long inputs are encoded in independent segments (10 s by default, a whole number of codec frames)
so memory stays bounded and a progress bar can advance; each segment's codes, length and scale are
stored, and decoding decodes the same segments, so a file decodes identically however it is read.
"""
from __future__ import annotations

import inspect
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .audio import audio_read, audio_write, convert_channels, resample
from .codec.bitstream import WccFile, WccSegment, read_wcc, write_wcc
from .errors import BitstreamError, WavecraftError

AUDIO_SUFFIXES = {".wav": "wav", ".flac": "flac", ".ogg": "ogg", ".opus": "opus", ".mp3": "mp3"}
NO_MODEL = (
    "no codec given: pass --model NAME_OR_PATH (a Hugging Face EnCodec folder or name, an audiocraft "
    "compression_state_dict.bin, or a wavecraft codec folder); this installation has no bundled default codec"
)


@dataclass
class CodecFileStats:
    """What compress/decompress did, for printing. Bitrates in kbps, sizes in bytes."""

    input: str
    output: str
    codec: str
    duration: float
    sample_rate: int
    channels: int
    num_codebooks: int
    cardinality: int
    frame_rate: float
    segments: int
    payload_bytes: int
    file_bytes: int
    coding: str
    seconds: float

    @property
    def nominal_kbps(self) -> float:
        return self.num_codebooks * math.log2(self.cardinality) * self.frame_rate / 1000.0

    @property
    def payload_kbps(self) -> float:
        return self.payload_bytes * 8 / self.duration / 1000.0

    @property
    def file_kbps(self) -> float:
        return self.file_bytes * 8 / self.duration / 1000.0

    @property
    def pcm16_bytes(self) -> int:
        """Size of the same audio as 16-bit PCM at the codec's rate and channel count."""
        return int(round(self.duration * self.sample_rate)) * self.channels * 2

    @property
    def ratio(self) -> float:
        return self.pcm16_bytes / self.file_bytes

    def summary(self) -> str:
        rate = f"{self.sample_rate / 1000:g} kHz {'mono' if self.channels == 1 else f'{self.channels} ch'}"
        return (
            f"{self.input} -> {self.output}: {self.duration:.2f} s at {rate}, codec {self.codec}, "
            f"{self.num_codebooks} codebooks x {self.cardinality} ({self.nominal_kbps:.2f} kbps nominal)\n"
            f"payload {self.payload_bytes} bytes = {self.payload_kbps:.2f} kbps ({self.coding}); "
            f"file {self.file_bytes} bytes = {self.file_kbps:.2f} kbps; "
            f"{self.ratio:.1f}x smaller than 16-bit PCM at {rate}; {self.seconds:.1f} s"
        )


def _load(model: Any) -> tuple[Any, str]:
    """Return (codec, locator): the locator is what gets recorded to find the codec again."""
    from .models.registry import BUNDLED, DEFAULT_CODEC

    if model is None:
        if DEFAULT_CODEC is None:
            raise WavecraftError(NO_MODEL)
        model = DEFAULT_CODEC
    if not isinstance(model, (str, Path)):
        return model, str(getattr(model, "name", "unknown"))
    from .codec import load_codec  # heavy import, only when a codec is really needed

    locator = str(model)
    if locator not in BUNDLED and Path(locator).expanduser().exists():
        locator = str(Path(locator).expanduser().resolve())  # works again from any directory
    return load_codec(locator), locator


def _device(codec: Any) -> torch.device:
    try:
        return next(codec.parameters()).device
    except (AttributeError, StopIteration, TypeError):
        return torch.device("cpu")


def _progress(total: float, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=round(total, 2), desc=desc, unit="s", disable=not enabled, leave=False,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s audio [{elapsed}<{remaining}]")


def _check_output(path: Path, overwrite: bool, input_path: Path) -> None:
    if path.exists() and not overwrite:
        raise WavecraftError(f"output {path} already exists; pass --force to overwrite it")
    if path.exists() and path.resolve() == input_path.resolve():
        raise WavecraftError(f"output {path} is the input file; choose another output path")
    if path.is_dir():
        raise WavecraftError(f"output {path} is a directory; give a file name")


def compress_file(
    input: str | Path,
    output: str | Path,
    model: Any = None,
    bandwidth: float | None = None,
    segment_seconds: float = 10.0,
    coding: str = "auto",
    overwrite: bool = False,
    progress: bool = False,
) -> CodecFileStats:
    """Encode an audio file into a .wcc file. `model`: a codec object or a name/path for load_codec.

    The audio is converted to the codec's channel count (mono <-> multichannel) and sample rate.
    `bandwidth` (kbps) picks the number of codebooks; None keeps the codec's current setting.
    """
    started = time.perf_counter()
    input, output = Path(input), Path(output)
    _check_output(output, overwrite, input)
    wav, source_sr = audio_read(input)  # errors name the file before any model is loaded
    source_channels = wav.shape[0]
    codec, locator = _load(model)
    previous = int(codec.num_codebooks)
    try:
        if bandwidth is not None:
            codec.set_bandwidth(bandwidth)  # raises a WavecraftError naming the valid range
        num_codebooks = int(codec.num_codebooks)
        try:
            wav = convert_channels(wav, int(codec.channels))
        except WavecraftError as err:
            raise WavecraftError(f"{input}: {err}") from None
        wav = resample(wav, source_sr, int(codec.sample_rate))
        wcc = _encode(codec, locator, wav, num_codebooks, segment_seconds, progress)
    finally:
        codec.set_num_codebooks(previous)
    wcc.source_sample_rate, wcc.source_channels = source_sr, source_channels
    file_bytes = write_wcc(output, wcc, coding=coding, overwrite=overwrite)
    return _stats(input, output, wcc, codec, file_bytes, started)


def _segment_length(codec: Any, total: int, segment_seconds: float) -> int:
    """Samples per segment: a whole number of frames, or the whole signal if that is impossible."""
    hop = codec.sample_rate / codec.frame_rate
    if segment_seconds is None or segment_seconds <= 0 or abs(hop - round(hop)) > 1e-9:
        return total
    frames = max(1, round(segment_seconds * codec.frame_rate))
    return frames * int(round(hop))


def _encode(codec: Any, locator: str, wav: torch.Tensor, num_codebooks: int,
            segment_seconds: float, progress: bool) -> WccFile:
    total = wav.shape[-1]
    seg_len = _segment_length(codec, total, segment_seconds)
    device = _device(codec)
    all_codes, segments = [], []
    bar = _progress(total / codec.sample_rate, "encoding", progress and total > seg_len)
    with bar, torch.inference_mode():
        for start in range(0, total, seg_len):
            piece = wav[:, start : start + seg_len]
            codes, scale = codec.encode(piece[None].to(device))
            codes = codes[0, :num_codebooks].to("cpu", torch.int64).numpy()
            if codes.shape[0] != num_codebooks:
                raise WavecraftError(f"codec returned {codes.shape[0]} codebooks, expected {num_codebooks}")
            scale_np = None if scale is None else scale.detach().to("cpu", torch.float32).numpy()
            all_codes.append(codes)
            segments.append(WccSegment(piece.shape[-1], codes.shape[1], scale_np))
            bar.update(round(piece.shape[-1] / codec.sample_rate, 2))
    return WccFile(
        codec_name=locator, weights_sha256=codec.weights_hash(), sample_rate=int(codec.sample_rate),
        channels=int(codec.channels), cardinality=int(codec.cardinality),
        codes=np.concatenate(all_codes, axis=1), segments=segments,
    )


def _stats(input: Path, output: Path, wcc: WccFile, codec: Any, file_bytes: int, started: float) -> CodecFileStats:
    return CodecFileStats(
        input=str(input), output=str(output), codec=wcc.codec_name, duration=wcc.duration,
        sample_rate=wcc.sample_rate, channels=wcc.channels, num_codebooks=wcc.num_codebooks,
        cardinality=wcc.cardinality, frame_rate=float(codec.frame_rate), segments=len(wcc.segments),
        payload_bytes=wcc.payload_bytes, file_bytes=file_bytes, coding=wcc.coding,
        seconds=time.perf_counter() - started,
    )


def decompress_file(
    input: str | Path,
    output: str | Path,
    model: Any = None,
    overwrite: bool = False,
    progress: bool = False,
    sample_rate: int | None = None,
    channels: int | None = None,
    bits_per_sample: int = 16,
) -> CodecFileStats:
    """Decode a .wcc file to audio (format from the output suffix: .wav, .flac, .ogg, .opus, .mp3).

    The codec recorded in the file is loaded unless `model` is given; either way its weights hash
    must match the file's. Output is at the codec's rate and channels unless overridden.
    """
    started = time.perf_counter()
    input, output = Path(input), Path(output)
    fmt = AUDIO_SUFFIXES.get(output.suffix.lower())
    if fmt is None:
        raise WavecraftError(
            f"cannot tell the audio format of {output} from its suffix; use one of {', '.join(AUDIO_SUFFIXES)}"
        )
    _check_output(output, overwrite, input)
    wcc = read_wcc(input)
    codec = _codec_for(wcc, model, input)
    previous = int(codec.num_codebooks)
    try:
        codec.set_num_codebooks(wcc.num_codebooks)
        wav = _decode(codec, wcc, progress)
    finally:
        codec.set_num_codebooks(previous)
    out_sr = sample_rate or wcc.sample_rate
    if channels is not None:
        wav = convert_channels(wav, channels)
    wav = resample(wav, wcc.sample_rate, out_sr)
    # Keep the level the codec produced: clamp to full scale, no normalisation.
    audio_write(output, wav, out_sr, format=fmt, strategy="clip", peak_clip_headroom_db=0.0,
                add_suffix=False, bits_per_sample=bits_per_sample, overwrite=overwrite)
    stats = _stats(input, output, wcc, codec, input.stat().st_size, started)
    stats.sample_rate, stats.channels = out_sr, wav.shape[0]
    return stats


def _codec_for(wcc: WccFile, model: Any, input: Path) -> Any:
    if model is None:
        try:
            codec, _ = _load(wcc.codec_name)
        except WavecraftError as err:
            raise WavecraftError(
                f"{input} was made with codec {wcc.codec_name!r}, which cannot be loaded here ({err}); "
                "pass --model with that codec's name or path"
            ) from None
    else:
        codec, _ = _load(model)
    digest = codec.weights_hash()
    name = getattr(codec, "name", "?")
    if digest != wcc.weights_sha256:
        raise BitstreamError(
            f"{input} was encoded with codec {wcc.codec_name!r} (weights sha256 {wcc.weights_sha256[:16]}...) "
            f"but model {name!r} has weights sha256 {digest[:16]}...; decode it with the codec that made it"
        )
    mismatch = [
        f"{what} {mine} != {theirs}"
        for what, mine, theirs in (
            ("sample rate", int(codec.sample_rate), wcc.sample_rate),
            ("channels", int(codec.channels), wcc.channels),
            ("cardinality", int(codec.cardinality), wcc.cardinality),
        )
        if mine != theirs
    ]
    if wcc.num_codebooks > int(codec.total_codebooks):
        mismatch.append(f"file uses {wcc.num_codebooks} codebooks, codec has {codec.total_codebooks}")
    if mismatch:
        raise BitstreamError(f"{input} does not fit codec {name!r}: {'; '.join(mismatch)}")
    return codec


def _decode(codec: Any, wcc: WccFile, progress: bool) -> torch.Tensor:
    device = _device(codec)
    takes_length = "length" in inspect.signature(codec.decode).parameters
    pieces = []
    bar = _progress(wcc.duration, "decoding", progress and len(wcc.segments) > 1)
    with bar, torch.inference_mode():
        for codes, scale, length in wcc.segment_codes():
            codes_t = torch.from_numpy(np.ascontiguousarray(codes))[None].to(device)
            scale_t = None if scale is None else torch.from_numpy(scale).to(device)
            if takes_length:  # lets chunked codecs rebuild their chunk layout exactly
                wav = codec.decode(codes_t, scale_t, length=length)
            else:
                wav = codec.decode(codes_t, scale_t)
            wav = wav[0].to("cpu", torch.float32)
            # The decoder returns whole frames: trim the padding (or pad a short decode) to the
            # segment's original length so concatenated segments line up.
            wav = wav[:, :length] if wav.shape[-1] >= length else torch.nn.functional.pad(wav, (0, length - wav.shape[-1]))
            pieces.append(wav)
            bar.update(round(length / wcc.sample_rate, 2))
    return torch.cat(pieces, dim=-1)
