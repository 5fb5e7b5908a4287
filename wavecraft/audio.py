"""Audio files in and out: read, write with normalisation, resample, convert channels.

Everything goes through soundfile (libsndfile reads wav/flac/ogg/opus/mp3) and soxr; there is no
torchaudio or ffmpeg dependency. Waveforms are float32 tensors shaped [channels, time] in [-1, 1].

`audio_write` follows audiocraft's signature and normalisation strategies so code written for it
keeps working; like audiocraft it overwrites by default (`overwrite=False` refuses instead).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import AudioReadError, WavecraftError

logger = logging.getLogger(__name__)

READ_FORMATS = ("wav", "flac", "ogg", "opus", "mp3")
# format -> soundfile container (the subtype comes from `_subtype`)
WRITE_FORMATS = {"wav": "WAV", "flac": "FLAC", "ogg": "OGG", "opus": "OGG", "mp3": "MP3"}
_LOSSY_SUBTYPES = {"ogg": "VORBIS", "opus": "OPUS", "mp3": "MPEG_LAYER_III"}
STRATEGIES = ("peak", "clip", "rms", "loudness", "none")
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    frames: int
    channels: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def _open(path: Path):
    import soundfile as sf

    if not path.exists():
        raise AudioReadError(f"audio file not found: {path}")
    if path.is_dir():
        raise AudioReadError(f"{path} is a directory, not an audio file")
    try:
        return sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, OSError) as err:
        raise AudioReadError(
            f"cannot decode audio file {path} ({err}); readable formats: {', '.join(READ_FORMATS)}"
        ) from None


def audio_info(path: str | Path) -> AudioInfo:
    """Sample rate, length in frames and channel count of an audio file, without decoding it."""
    path = Path(path)
    with _open(path) as f:
        return AudioInfo(int(f.samplerate), int(f.frames), int(f.channels))


def audio_read(
    path: str | Path,
    seek_time: float = 0.0,
    duration: float | None = None,
    sample_rate: int | None = None,
    channels: int | None = None,
    pad: bool = False,
) -> tuple[torch.Tensor, int]:
    """Read `duration` seconds from `seek_time` as float32 [C, T]; returns (wav, sample_rate).

    With `sample_rate` / `channels` the audio is resampled / converted and that rate is returned.
    With `pad`, a read that hits the end of the file is zero-padded to the requested duration.
    """
    import soundfile as sf

    path = Path(path)
    if seek_time < 0 or (duration is not None and duration <= 0):
        raise AudioReadError(f"{path}: seek_time must be >= 0 and duration > 0 (got {seek_time}, {duration})")
    with _open(path) as f:
        file_sr, total = int(f.samplerate), int(f.frames)
        start = int(seek_time * file_sr)
        if total <= 0:
            raise AudioReadError(f"audio file {path} contains no samples")
        if start >= total:
            raise AudioReadError(
                f"seek_time {seek_time:g} s is past the end of {path} ({total / file_sr:.3f} s long)"
            )
        wanted = -1 if duration is None else int(duration * file_sr)
        try:
            if start:
                f.seek(start)
            data = f.read(frames=wanted, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as err:
            raise AudioReadError(f"cannot decode audio file {path}: {err}") from None
    if data.shape[0] == 0:
        raise AudioReadError(f"audio file {path} contains no samples")
    wav = torch.from_numpy(np.ascontiguousarray(data.T))
    if pad and wanted > wav.shape[-1]:
        wav = torch.nn.functional.pad(wav, (0, wanted - wav.shape[-1]))
    if channels is not None:
        wav = convert_channels(wav, channels)
    if sample_rate is not None and sample_rate != file_sr:
        wav = resample(wav, file_sr, sample_rate)
        file_sr = sample_rate
    return wav, file_sr


def resample(wav: torch.Tensor, from_sr: int, to_sr: int, quality: str = "HQ") -> torch.Tensor:
    """Resample along the last axis with soxr (band-limited, high quality). Not differentiable.

    Output length is round(T * to_sr / from_sr); dtype and device are kept.
    """
    if from_sr <= 0 or to_sr <= 0:
        raise WavecraftError(f"sample rates must be positive, got {from_sr} -> {to_sr}")
    if from_sr == to_sr:
        return wav
    import soxr

    lead, length = wav.shape[:-1], wav.shape[-1]
    rows = wav.detach().reshape(-1, length).to("cpu", torch.float32).numpy()
    out = soxr.resample(np.ascontiguousarray(rows.T), from_sr, to_sr, quality=quality)
    out = torch.from_numpy(np.ascontiguousarray(np.asarray(out).reshape(-1, rows.shape[0]).T))
    return out.reshape(*lead, out.shape[-1]).to(wav.device, wav.dtype)


def convert_channels(wav: torch.Tensor, channels: int) -> torch.Tensor:
    """Convert [C, T] to `channels`: average down to mono, repeat mono up; nothing else is guessed."""
    have = wav.shape[-2]
    if have == channels:
        return wav
    if channels == 1:
        return wav.mean(dim=-2, keepdim=True)
    if have == 1 and channels > 1:
        return wav.expand(*wav.shape[:-2], channels, wav.shape[-1]).contiguous()
    raise WavecraftError(
        f"cannot convert {have}-channel audio to {channels} channels: only mono <-> multichannel "
        "conversions are defined (downmix the file yourself first)"
    )


def normalize_audio(
    wav: torch.Tensor,
    normalize: bool = True,
    strategy: str | None = "peak",
    peak_clip_headroom_db: float = 1.0,
    rms_headroom_db: float = 18.0,
    loudness_headroom_db: float = 14.0,
    loudness_compressor: bool = False,
    log_clipping: bool = False,
    sample_rate: int | None = None,
    stem_name: str | None = None,
) -> torch.Tensor:
    """Scale [C, T] audio per `strategy`, audiocraft-style.

    peak: peak at -headroom dBFS; clip: clamp to -headroom dBFS; rms: RMS of the mono mix at
    -rms_headroom dBFS; loudness: integrated BS.1770 loudness at -loudness_headroom LUFS
    (needs sample_rate; optional tanh compressor); none: unchanged. With normalize=False, peak
    and rms only ever scale down (to avoid clipping), never up.
    """
    strategy = "none" if strategy is None else strategy
    if strategy not in STRATEGIES:
        raise WavecraftError(f"unknown normalisation strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    eps = 1e-12
    if strategy == "peak":
        target = 10.0 ** (-peak_clip_headroom_db / 20.0)
        gain = target / max(float(wav.abs().max()), eps)
        if normalize or gain < 1.0:
            wav = wav * gain
    elif strategy == "clip":
        target = 10.0 ** (-peak_clip_headroom_db / 20.0)
        wav = wav.clamp(-target, target)
    elif strategy == "rms":
        target = 10.0 ** (-rms_headroom_db / 20.0)
        rms = float(wav.mean(dim=0).pow(2).mean().sqrt())
        gain = target / max(rms, eps)
        if normalize or gain < 1.0:
            wav = wav * gain
        wav = _clip(wav, log_clipping, stem_name)
    elif strategy == "loudness":
        if sample_rate is None:
            raise WavecraftError("the 'loudness' strategy needs the sample rate")
        from .loudness import integrated_loudness

        loudness = integrated_loudness(wav, sample_rate)
        if math.isfinite(loudness):  # silence stays silence
            wav = wav * 10.0 ** ((-loudness_headroom_db - loudness) / 20.0)
        if loudness_compressor:
            wav = torch.tanh(wav)
        wav = _clip(wav, log_clipping, stem_name)
    return wav


def _clip(wav: torch.Tensor, log_clipping: bool, stem_name: str | None) -> torch.Tensor:
    peak = float(wav.abs().max()) if wav.numel() else 0.0
    if peak > 1.0:
        if log_clipping:
            logger.warning("clipping %s: peak %.2f dBFS after normalisation", stem_name or "audio", 20 * math.log10(peak))
        wav = wav.clamp(-1.0, 1.0)
    return wav


def _as_channels_time(wav: torch.Tensor | np.ndarray) -> torch.Tensor:
    if isinstance(wav, np.ndarray):
        wav = torch.from_numpy(wav)
    if not isinstance(wav, torch.Tensor):
        raise WavecraftError(f"audio must be a tensor or numpy array, got {type(wav).__name__}")
    if wav.dim() == 3 and wav.shape[0] == 1:
        wav = wav[0]
    if wav.dim() == 1:
        wav = wav[None]
    if wav.dim() != 2:
        raise WavecraftError(f"audio to write must be [channels, time], got shape {tuple(wav.shape)}")
    if wav.shape[-1] == 0:
        raise WavecraftError("refusing to write an empty waveform (0 samples)")
    if not wav.dtype.is_floating_point:
        raise WavecraftError(f"audio to write must be floating point, got {wav.dtype}")
    wav = wav.detach().to("cpu", torch.float32)
    if not bool(torch.isfinite(wav).all()):
        raise WavecraftError("audio to write contains NaN or infinite samples")
    return wav


def audio_write(
    stem_name: str | Path,
    wav: torch.Tensor | np.ndarray,
    sample_rate: int,
    format: str = "wav",
    normalize: bool = True,
    strategy: str | None = "peak",
    peak_clip_headroom_db: float = 1.0,
    rms_headroom_db: float = 18.0,
    loudness_headroom_db: float = 14.0,
    loudness_compressor: bool = False,
    log_clipping: bool = True,
    make_parent_dir: bool = True,
    add_suffix: bool = True,
    bits_per_sample: int = 16,
    overwrite: bool = True,
) -> Path:
    """Normalise and write [C, T] audio; returns the path written (stem + '.format' by default).

    wav: 16-bit PCM (default), 24-bit PCM or 32-bit float; flac: 16 or 24 bit; ogg (Vorbis), opus
    (8/12/16/24/48 kHz only) and mp3 are lossy and ignore bits_per_sample. Samples are clamped to [-1, 1] before integer
    conversion, so nothing wraps around.
    """
    import soundfile as sf

    format = format.lower().lstrip(".")
    if format not in WRITE_FORMATS:
        raise WavecraftError(f"cannot write format {format!r}; choose one of {', '.join(WRITE_FORMATS)}")
    subtype = _subtype(format, bits_per_sample)
    path = Path(stem_name)
    if add_suffix:
        path = path.with_name(path.name + "." + format)
    if path.exists() and not overwrite:
        raise WavecraftError(f"{path} already exists; refusing to overwrite it")
    if int(sample_rate) <= 0:
        raise WavecraftError(f"sample rate must be positive, got {sample_rate}")
    if format == "opus" and int(sample_rate) not in OPUS_RATES:
        raise WavecraftError(
            f"cannot write {path}: Opus supports only {', '.join(map(str, OPUS_RATES))} Hz, not {sample_rate}; "
            "resample first or choose another format"
        )
    wav = _as_channels_time(wav)
    wav = normalize_audio(
        wav, normalize, strategy, peak_clip_headroom_db, rms_headroom_db, loudness_headroom_db,
        loudness_compressor, log_clipping, sample_rate, str(path),
    )
    wav = _clip(wav, log_clipping and strategy in (None, "none"), str(path))
    if subtype == "PCM_16":
        # Own conversion so a read-back gives the same int16 values: x * 32768, clamped.
        data = (wav * 32768.0).round().clamp(-32768, 32767).to(torch.int16).numpy().T
    else:
        data = wav.numpy().T
    if make_parent_dir:
        path.parent.mkdir(parents=True, exist_ok=True)
    existed = path.exists()
    try:
        sf.write(str(path), np.ascontiguousarray(data), int(sample_rate), subtype=subtype, format=WRITE_FORMATS[format])
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as err:
        if not existed:
            path.unlink(missing_ok=True)  # no half-written file left behind
        raise WavecraftError(f"cannot write {path}: {err}") from None
    return path


def _subtype(format: str, bits_per_sample: int) -> str | None:
    if format in _LOSSY_SUBTYPES:
        return _LOSSY_SUBTYPES[format]
    choices = {16: "PCM_16", 24: "PCM_24"}
    if format == "wav":
        choices[32] = "FLOAT"
    if bits_per_sample not in choices:
        raise WavecraftError(
            f"{format} cannot be written with {bits_per_sample} bits per sample; choose {sorted(choices)}"
        )
    return choices[bits_per_sample]
