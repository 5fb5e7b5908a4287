"""`wavecraft generate`: parse arguments, call MusicGen / AudioGen, write audio files."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "generate",
        help="generate music or sound from a text prompt",
        description="Generate audio from a text description with a MusicGen or AudioGen model. "
        "Give one PROMPT, or --batch FILE with one prompt per line (all generated together). "
        "--melody makes the music follow a reference tune (melody models only); --continue "
        "extends an existing recording (the output starts with it). Outputs beyond the model's "
        "window (30 s for MusicGen) are produced with a sliding window. Nothing is downloaded: "
        "--model must be on disk or in the Hugging Face cache.",
    )
    p.add_argument("prompt", nargs="?", help="text description of the audio to generate")
    p.add_argument("-o", "--output", default="generated.wav", metavar="FILE",
                   help="output file; its extension picks the format (wav, flac, ogg, opus, mp3). With --batch, "
                        "'_N' is added to the name for row N, or '{i}' in the name is replaced (default generated.wav)")
    p.add_argument("-m", "--model", metavar="NAME_OR_PATH",
                   help="model: a wavecraft folder, a Hugging Face MusicGen folder, an audiocraft folder "
                        "(state_dict.bin + compression_state_dict.bin), or a repo id in the local HF cache")
    p.add_argument("-d", "--duration", type=float, default=None, metavar="SECONDS",
                   help="seconds of audio to generate (default: 15 for MusicGen, 5 for AudioGen)")
    p.add_argument("-s", "--seed", type=int, default=None, help="random seed; the same seed reproduces the output exactly")
    p.add_argument("--top-k", type=int, default=250, help="sample among the K most likely tokens (0: off; default 250)")
    p.add_argument("--top-p", type=float, default=0.0, help="nucleus sampling mass, overrides --top-k when > 0 (default 0)")
    p.add_argument("--temperature", type=float, default=1.0, help="softmax temperature (default 1.0)")
    p.add_argument("--cfg", type=float, default=3.0, metavar="COEF",
                   help="classifier-free guidance strength; 1 disables guidance (default 3.0)")
    p.add_argument("--greedy", action="store_true", help="always take the most likely token (no sampling)")
    p.add_argument("--two-step-cfg", action="store_true",
                   help="run the conditional and unconditional passes separately instead of batched")
    p.add_argument("--extend-stride", type=float, default=None, metavar="SECONDS",
                   help="sliding-window step for outputs longer than the model's window (default 18 / AudioGen 2)")
    p.add_argument("--melody", metavar="FILE", help="audio file whose melody (chroma) the music should follow")
    p.add_argument("--continue", dest="continue_from", metavar="FILE",
                   help="audio file to continue; the output includes it, so --duration must exceed its length")
    p.add_argument("--batch", metavar="FILE", help="text file with one prompt per line (blank lines skipped)")
    p.add_argument("--normalize", default=None, choices=("loudness", "peak", "rms", "clip", "none"),
                   help="how to normalise the output level (default loudness, as audiocraft's demos; with --stream "
                        "only clip, the default there, or none)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--quantize", choices=("int8", "int4"), default=None,
                   help="weight-only quantised LM for faster CPU generation (int8: small quality cost, int4: "
                        "faster, larger cost; see docs/performance.md)")
    p.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default=None,
                   help="LM dtype (default float32; bfloat16 for speed on GPU)")
    p.add_argument("--stream", action="store_true",
                   help="write the audio file while it is generated (wav/flac/ogg); levels are clipped, not normalised")
    p.add_argument("-f", "--force", action="store_true", help="overwrite existing output files")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary")
    p.set_defaults(func=run_generate)


def _prompts(args: argparse.Namespace) -> list[str]:
    from wavecraft.errors import ConfigError

    if args.batch and args.prompt is not None:
        raise ConfigError("give either a PROMPT or --batch FILE, not both")
    if args.batch:
        path = Path(args.batch)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"cannot read prompt file {path}: {err}") from None
        prompts = [line.strip() for line in lines if line.strip()]
        if not prompts:
            raise ConfigError(f"prompt file {path} holds no prompts (one per line)")
        return prompts
    if args.prompt is None:
        raise ConfigError('give a PROMPT (e.g. wavecraft generate "lofi beat with warm piano") or --batch FILE')
    if not args.prompt.strip():
        raise ConfigError("the prompt is empty: describe the audio to generate")
    return [args.prompt.strip()]


def _outputs(template: str, count: int, force: bool) -> list[Path]:
    from wavecraft.audio import WRITE_FORMATS
    from wavecraft.errors import ConfigError

    base = Path(template)
    fmt = base.suffix.lower().lstrip(".")
    if fmt not in WRITE_FORMATS:
        raise ConfigError(f"output {base}: unknown audio extension {base.suffix!r}; use one of {', '.join(WRITE_FORMATS)}")
    if count == 1:
        paths = [base]
    elif "{i}" in base.name:
        paths = [base.with_name(base.name.replace("{i}", str(i))) for i in range(count)]
    else:
        paths = [base.with_name(f"{base.stem}_{i}{base.suffix}") for i in range(count)]
    existing = [str(p) for p in paths if p.exists()]
    if existing and not force:
        raise ConfigError(f"{', '.join(existing[:3])} already exist(s); pass --force to overwrite")
    return paths


def _model_name(args: argparse.Namespace) -> str:
    from wavecraft.errors import ConfigError
    from wavecraft.models.registry import DEFAULT_MODEL

    if args.model:
        return args.model
    if DEFAULT_MODEL is None:
        raise ConfigError(
            "no bundled model is available yet: pass --model with a wavecraft folder, a Hugging Face MusicGen "
            "folder, an audiocraft folder or a repo id in the local Hugging Face cache"
        )
    return DEFAULT_MODEL


def run_generate(args: argparse.Namespace) -> int:
    from wavecraft.audio import audio_read, audio_write
    from wavecraft.errors import ConfigError
    from wavecraft.models.loaders.auto import load_model
    from wavecraft.models.musicgen import describe

    prompts = _prompts(args)
    normalize = _normalize_mode(args)
    if args.duration is not None and not args.duration > 0:
        raise ConfigError(f"--duration must be > 0 seconds, got {args.duration:g}")
    if args.melody and args.continue_from:
        raise ConfigError("--melody and --continue cannot be combined")
    outputs = _outputs(args.output, len(prompts), args.force)
    melody = audio_read(args.melody) if args.melody else None  # read inputs before the (slow) model load
    prompt_audio = audio_read(args.continue_from) if args.continue_from else None

    model = load_model(_model_name(args))
    if melody is not None and not model.supports_melody:
        raise ConfigError(f"model {model.name} has no melody (chroma) conditioning; --melody needs a melody model")
    if args.device is not None:
        model.to(args.device)
    elif _cuda():
        model.to("cuda")
    if args.dtype is not None:
        import torch

        model.lm.to(getattr(torch, args.dtype))
    if args.quantize is not None:
        model.quantize(args.quantize)
    duration = args.duration if args.duration is not None else model.config.default_duration
    stride = args.extend_stride if args.extend_stride is not None else model.config.extend_stride
    model.set_generation_params(
        use_sampling=not args.greedy, top_k=args.top_k, top_p=args.top_p, temperature=args.temperature,
        duration=duration, cfg_coef=args.cfg, two_step_cfg=args.two_step_cfg,
        extend_stride=stride, seed=args.seed,
    )
    if not args.quiet:
        print(describe(model), file=sys.stderr)
    show = not args.quiet
    inputs: dict = {}
    if melody is not None:
        wav_m, sr_m = melody
        inputs = dict(melody_wavs=[wav_m] * len(prompts), melody_sample_rate=sr_m)
    elif prompt_audio is not None:
        wav_p, sr_p = prompt_audio
        if wav_p.shape[-1] / sr_p >= duration:
            raise ConfigError(
                f"--continue audio is {wav_p.shape[-1] / sr_p:.2f} s long; --duration ({duration:g} s) must be longer "
                "(it counts the continued audio too)"
            )
        inputs = dict(prompt=wav_p[None].expand(len(prompts), -1, -1), prompt_sample_rate=sr_p)
    if args.stream:
        _write_stream(model, prompts, inputs, outputs, normalize, show)
        return 0
    if melody is not None:
        wav = model.generate_with_chroma(prompts, inputs["melody_wavs"], inputs["melody_sample_rate"], progress=show)
    elif prompt_audio is not None:
        wav = model.generate_continuation(inputs["prompt"], inputs["prompt_sample_rate"], prompts, progress=show)
    else:
        wav = model.generate(prompts, progress=show)
    for path, one in zip(outputs, wav):
        written = audio_write(
            path, one.cpu(), model.sample_rate, format=path.suffix.lstrip("."), add_suffix=False,
            strategy=None if normalize == "none" else normalize, normalize=normalize != "none",
            loudness_compressor=True, overwrite=True,
        )
        if not args.quiet:
            print(written)
    return 0


_STREAM_FORMATS = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16"), "ogg": ("OGG", "VORBIS")}


def _normalize_mode(args: argparse.Namespace) -> str:
    from wavecraft.errors import ConfigError

    if not args.stream:
        return args.normalize or "loudness"
    if args.normalize not in (None, "clip", "none"):
        raise ConfigError(f"--stream writes audio as it is generated, so --normalize {args.normalize} (which needs "
                          "the whole file) is not possible; use clip (the default with --stream) or none")
    suffix = Path(args.output).suffix.lower().lstrip(".")
    if suffix not in _STREAM_FORMATS:
        raise ConfigError(f"--stream writes {', '.join(_STREAM_FORMATS)} files, not {suffix!r}")
    return args.normalize or "clip"


def _write_stream(model: Any, prompts: list[str], inputs: dict, outputs: list[Path], normalize: str, show: bool) -> None:
    """Write each row's file piece by piece as `generate_stream` yields audio (samples clipped to
    [-1, 1]; 'none' only skips the warning about clipping)."""
    import time

    import soundfile as sf
    import torch

    from wavecraft.errors import ConfigError

    fmt, subtype = _STREAM_FORMATS[outputs[0].suffix.lower().lstrip(".")]
    files = []
    try:
        for path in outputs:
            path.parent.mkdir(parents=True, exist_ok=True)
            files.append(sf.SoundFile(str(path), "w", model.sample_rate, model.audio_channels, subtype, format=fmt))
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        for f in files:
            f.close()
        raise ConfigError(f"cannot write {path}: {err}") from None
    start, first, clipped = time.perf_counter(), None, False
    try:
        for piece in model.generate_stream(prompts, progress=show, **inputs):
            first = first if first is not None else time.perf_counter() - start
            clipped |= bool(piece.abs().max() > 1)
            for f, row in zip(files, piece.clamp(-1, 1).cpu()):
                if subtype == "PCM_16":  # the same integer conversion as audio_write, so files match
                    row = (row * 32768.0).round().clamp(-32768, 32767).to(torch.int16)
                f.write(row.numpy().T)
                f.flush()
    finally:
        for f in files:
            f.close()
    if show:
        if clipped and normalize != "none":
            print("some samples exceeded [-1, 1] and were clipped", file=sys.stderr)
        print(f"first audio after {first or 0:.2f} s, done after {time.perf_counter() - start:.2f} s", file=sys.stderr)
        for path in outputs:
            print(path)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
