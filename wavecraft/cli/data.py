"""`wavecraft data ...`: index audio folders into manifests, pre-encode token caches.

The dataset builders (`wavecraft data build-*`) register themselves from `wavecraft.cli.data_build`
when that module is present.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("data", help="prepare training data (manifests, token caches, datasets)",
                              description="Prepare training data.")
    sub = p.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    idx = sub.add_parser("index", help="scan a folder of audio into a data.jsonl manifest",
                         description="Scan DIR (recursively) for audio files and write an audiocraft-style manifest. "
                                     "Unreadable files are skipped with a warning.")
    idx.add_argument("dir", help="folder of audio files (wav, flac, mp3, ogg, opus); sidecar <name>.json metadata is "
                                 "picked up at training time")
    idx.add_argument("-o", "--output", required=True, help="manifest to write (.jsonl or .jsonl.gz)")
    idx.add_argument("--workers", type=int, default=8, help="parallel readers (default 8)")
    idx.add_argument("--relative", action="store_true", help="store paths relative to the manifest's folder")
    idx.add_argument("--force", action="store_true", help="overwrite an existing manifest")
    idx.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    idx.set_defaults(func=_index)

    tok = sub.add_parser("tokens", help="encode a manifest with a codec into a token cache for LM training",
                         description="Encode every file of MANIFEST once; point an LM recipe's token_cache at OUT.")
    tok.add_argument("manifest", help="data.jsonl[.gz] to encode")
    tok.add_argument("--codec", required=True, help="codec folder / checkpoint (anything load_codec reads)")
    tok.add_argument("--n-q", type=int, default=None, help="codebooks to keep (default: all of the codec's)")
    tok.add_argument("-o", "--output", required=True, help="cache folder to create")
    tok.add_argument("--device", default="auto", help="cpu, cuda, or auto (default)")
    tok.add_argument("--force", action="store_true", help="replace an existing cache folder")
    tok.set_defaults(func=_tokens)

    mrg = sub.add_parser("merge", help="join several manifests into one",
                         description="Concatenate manifests (e.g. the music and sound training sets) into one, "
                                     "with paths rewritten relative to the new manifest's folder.")
    mrg.add_argument("manifests", nargs="+", help="data.jsonl[.gz] files (or folders holding one) to join")
    mrg.add_argument("-o", "--output", required=True, help="manifest to write (.jsonl or .jsonl.gz)")
    mrg.add_argument("--force", action="store_true", help="overwrite an existing manifest")
    mrg.set_defaults(func=_merge)

    if importlib.util.find_spec("wavecraft.cli.data_build") is not None:
        importlib.import_module("wavecraft.cli.data_build").add_build_commands(sub)


def _index(args: argparse.Namespace) -> int:
    from wavecraft.data.manifest import ManifestError, index_directory, write_manifest

    from pathlib import Path

    if Path(args.output).exists() and not args.force:
        raise ManifestError(f"{args.output} already exists; pass --force to overwrite it")
    metas, skipped = index_directory(args.dir, workers=args.workers, progress=not args.no_progress)
    if not metas:
        raise ManifestError(f"no readable audio file under {args.dir} ({len(skipped)} unreadable)")
    write_manifest(metas, args.output, force=args.force, relative=args.relative)
    for path, reason in skipped[:20]:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    if len(skipped) > 20:
        print(f"... and {len(skipped) - 20} more unreadable files", file=sys.stderr)
    hours = sum(m.duration for m in metas) / 3600
    print(f"wrote {args.output}: {len(metas)} files, {hours:.2f} h"
          + (f"; skipped {len(skipped)} unreadable file(s)" if skipped else ""))
    return 0


def _merge(args: argparse.Namespace) -> int:
    from wavecraft.data.manifest import merge_manifests

    out, count, hours = merge_manifests(args.manifests, args.output, force=args.force)
    print(f"wrote {out}: {count} files, {hours:.2f} h from {len(args.manifests)} manifests")
    return 0


def _tokens(args: argparse.Namespace) -> int:
    import torch

    from wavecraft.codec import load_codec
    from wavecraft.data.tokens import build_token_cache

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    codec = load_codec(args.codec, device=device)
    if args.n_q is not None:
        codec.set_num_codebooks(args.n_q)
    out, skipped = build_token_cache(args.manifest, codec, args.output, force=args.force, progress=True)
    print(f"wrote token cache {out} ({codec.num_codebooks} codebooks at {codec.frame_rate:g} Hz)"
          + (f"; skipped {skipped} unreadable file(s)" if skipped else ""))
    return 0
