"""Codec speed at the MusicGen 32 kHz shape: transformers' EnCodec against wavecraft's codec.

    python bench/codec.py                # 10 s of audio, 2 threads, CPU; long-file memory at 120 s
    python bench/codec.py --quick        # narrow codec, 1 s: checks that everything runs

Random weights (random codebooks too: transformers initialises them to zeros) are built and saved
once by transformers; wavecraft loads the same folder. Engines run one after the other, each in
its own process, --rounds times over (interleaved: this machine's slow spells hit every engine
alike). Reported: encode and decode seconds (best of --repeats in each of the rounds), speed-ups over
transformers, whether the codes are identical, the largest audio difference, and peak memory.
`wavecraft-plain` is wavecraft without its fast paths (plain convolutions, one pass over the
input); `wavecraft-long` decodes --long-seconds of codes (in bounded pieces, the default beyond
2 s) and `wavecraft-long-onepass` the same in one pass, to show the memory difference.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from common import (CODEC_32K, CODEC_QUICK, add_common_args, best_of, machine_line, peak_memory_mb, print_table,
                    reset_peak_memory, run_children, setup_threads, timed)


def build(folder: Path, quick: bool) -> Path:
    if (folder / "config.json").exists():
        return folder
    import torch
    from transformers import EncodecConfig, EncodecModel

    torch.manual_seed(0)
    model = EncodecModel(EncodecConfig(**(CODEC_QUICK if quick else CODEC_32K))).eval()
    with torch.no_grad():
        for layer in model.quantizer.layers:
            layer.codebook.embed.normal_()
            layer.codebook.embed_avg.copy_(layer.codebook.embed)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    return folder


def test_audio(seconds: float):
    import torch

    g = torch.Generator().manual_seed(0)
    return (torch.randn(1, 1, int(seconds * 32000), generator=g) * 0.1).clamp(-1, 1)


def run_engine(args: argparse.Namespace, folder: Path) -> dict:
    import torch

    wav = test_audio(args.seconds).to(args.device)
    result: dict = dict(engine=args.engine)
    with torch.inference_mode():
        if args.engine == "transformers":
            from transformers import EncodecModel

            hf = EncodecModel.from_pretrained(str(folder)).to(args.device).eval()
            reset_peak_memory(args.device)
            hf(wav[..., :32000], bandwidth=2.2)  # warm-up
            result["encode_s"], codes = best_of(lambda: hf.encode(wav, bandwidth=2.2).audio_codes[0], args.device,
                                                args.repeats)
            result["decode_s"], audio = best_of(lambda: hf.decode(codes[None], [None]).audio_values, args.device,
                                                args.repeats)
        else:
            from wavecraft.codec import load_codec

            codec = load_codec(str(folder), device=args.device)
            if args.engine == "wavecraft-plain":  # the plain convolutions, whole input in one pass
                codec.set_fast(False)
                codec.stream_frames = None
            reset_peak_memory(args.device)  # the peaks below: the work, not the loading
            if args.engine.startswith("wavecraft-long"):
                g = torch.Generator().manual_seed(1)
                long_codes = torch.randint(0, codec.cardinality, (1, 4, int(args.long_seconds * 50)), generator=g)
                codec.stream_frames = None if args.engine.endswith("onepass") else type(codec).stream_frames
                result["decode_s"], audio = timed(lambda: codec.decode(long_codes.to(args.device)), args.device)
                result["seconds"] = args.long_seconds
                result["peak_mb"] = peak_memory_mb(args.device)
                return result
            codec.encode(wav[..., :32000])  # warm-up
            result["encode_s"], (codes, _) = best_of(lambda: codec.encode(wav), args.device, args.repeats)
            result["decode_s"], audio = best_of(lambda: codec.decode(codes), args.device, args.repeats)
    result["seconds"] = args.seconds
    result["peak_mb"] = peak_memory_mb(args.device)
    torch.save({"codes": codes.cpu(), "audio": audio.float().cpu()}, Path(args.workdir) / f"codec-out-{args.engine}.pt")
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(p)
    p.add_argument("--seconds", type=float, default=None, help="audio length (default 10, --quick 1)")
    p.add_argument("--long-seconds", type=float, default=None, help="long-file decode length (default 120, --quick 5)")
    p.add_argument("--repeats", type=int, default=2, help="timed runs per measure and round; the best is kept")
    p.add_argument("--rounds", type=int, default=5, help="passes over the 10 s engines, interleaved")
    p.add_argument("--engines", default="transformers,wavecraft,wavecraft-plain,wavecraft-long,wavecraft-long-onepass")
    args = p.parse_args()
    args.seconds = args.seconds or (1.0 if args.quick else 10.0)
    args.long_seconds = args.long_seconds or (5.0 if args.quick else 120.0)
    folder = Path(args.workdir) / ("encodec-quick" if args.quick else "encodec-32khz-random")
    if args.engine:
        setup_threads(args.threads)
        print(json.dumps(run_engine(args, build(folder, args.quick))))
        return
    build(folder, args.quick)
    engines = args.engines.split(",")
    extra = ["--seconds", str(args.seconds), "--long-seconds", str(args.long_seconds), "--repeats", str(args.repeats)]
    short = [e for e in engines if not e.startswith("wavecraft-long")]
    rows = run_children(Path(__file__).resolve(), short, args, extra, rounds=args.rounds)
    rows += run_children(Path(__file__).resolve(), [e for e in engines if e not in short], args, extra)
    import torch

    outs = {r["engine"]: Path(args.workdir) / f"codec-out-{r['engine']}.pt" for r in rows}
    ref_row = next((r for r in rows if r["engine"] == "transformers"), None)
    ref = torch.load(outs["transformers"]) if ref_row is not None else None
    for r in rows:
        if ref_row is not None and "encode_s" in r:
            r["encode_x"] = ref_row["encode_s"] / r["encode_s"]
            r["decode_x"] = ref_row["decode_s"] / r["decode_s"]
            mine = torch.load(outs[r["engine"]])
            r["codes_equal"] = "yes" if torch.equal(mine["codes"].view(-1), ref["codes"].view(-1)) else "NO"
            # Decoding the same codes: compare the audio for the codes both engines agree on.
            n = min(mine["audio"].shape[-1], ref["audio"].shape[-1])
            r["audio_diff"] = float((mine["audio"].view(-1)[:n] - ref["audio"].view(-1)[:n]).abs().max())
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print_table(rows, [
        ("engine", "engine", "{}"), ("seconds", "audio s", "{:g}"), ("encode_s", "encode s", "{:.3f}"),
        ("encode_x", "x transformers", "{:.2f}"), ("decode_s", "decode s", "{:.3f}"), ("decode_x", "x transformers", "{:.2f}"),
        ("codes_equal", "codes identical", "{}"), ("audio_diff", "max audio diff", "{:.2e}"), ("peak_mb", "peak MB", "{:.0f}"),
    ], f"Codec, 32 kHz MusicGen shape{' (quick: narrow)' if args.quick else ''}; {machine_line(args)}")


if __name__ == "__main__":
    sys.exit(main())
