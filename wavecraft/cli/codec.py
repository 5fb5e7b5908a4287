"""`wavecraft compress` and `wavecraft decompress`: parse arguments, call wavecraft.compress, report."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compress",
        help="encode an audio file into a compact .wcc file with a neural codec",
        description="Encode an audio file (wav/flac/ogg/opus/mp3) into a .wcc file. The audio is "
        "resampled and converted to the codec's rate and channels; the codec's identity is recorded "
        "so `wavecraft decompress` can find and verify it.",
    )
    p.add_argument("input", help="audio file to compress")
    p.add_argument("output", help="the .wcc file to write")
    p.add_argument("-m", "--model", help="codec: a Hugging Face EnCodec folder or name, an audiocraft "
                   "compression_state_dict.bin, or a wavecraft codec folder (required for now)")
    p.add_argument("-b", "--bandwidth", type=float, metavar="KBPS",
                   help="target bitrate in kbps; picks how many codebooks are used (default: the codec's setting)")
    p.add_argument("--segment", type=float, default=10.0, metavar="SECONDS",
                   help="encode in independent segments of this length to bound memory (0: one pass; default 10)")
    p.add_argument("--coding", choices=("auto", "packed", "entropy"), default="auto",
                   help="payload coding: bit-packed, adaptive entropy coding, or whichever is smaller (default)")
    p.add_argument("-f", "--force", action="store_true", help="overwrite the output if it exists")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary")
    p.set_defaults(func=run_compress)

    p = subparsers.add_parser(
        "decompress",
        help="decode a .wcc file back to audio",
        description="Decode a .wcc file to audio (.wav, .flac, .ogg, .opus or .mp3, from the output name). "
        "The codec recorded in the file is used unless --model is given; its weights must match.",
    )
    p.add_argument("input", help="the .wcc file to decode")
    p.add_argument("output", help="audio file to write (.wav, .flac, .ogg, .opus or .mp3)")
    p.add_argument("-m", "--model", help="codec to decode with (default: the one recorded in the file)")
    p.add_argument("--sample-rate", type=int, metavar="HZ", help="resample the output (default: the codec's rate)")
    p.add_argument("--channels", type=int, help="convert the output to this many channels (mono <-> multichannel)")
    p.add_argument("--bits", type=int, default=16, choices=(16, 24, 32),
                   help="bits per sample for wav/flac (32 = float wav; default 16)")
    p.add_argument("-f", "--force", action="store_true", help="overwrite the output if it exists")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary")
    p.set_defaults(func=run_decompress)


def run_compress(args: argparse.Namespace) -> int:
    from wavecraft.compress import compress_file

    stats = compress_file(
        args.input, args.output, model=args.model, bandwidth=args.bandwidth, segment_seconds=args.segment,
        coding=args.coding, overwrite=args.force, progress=not args.quiet,
    )
    if not args.quiet:
        print(stats.summary())
    return 0


def run_decompress(args: argparse.Namespace) -> int:
    from wavecraft.compress import decompress_file

    stats = decompress_file(
        args.input, args.output, model=args.model, overwrite=args.force, progress=not args.quiet,
        sample_rate=args.sample_rate, channels=args.channels, bits_per_sample=args.bits,
    )
    if not args.quiet:
        print(stats.summary())
    return 0
