"""Text-to-music speed: transformers' MusicGen against wavecraft (fp32, int8, int4, streaming).

    python bench/musicgen.py                   # musicgen-small shape, 10 s of audio, 2 threads, CPU
    python bench/musicgen.py --quick           # tiny shapes, 1 s: checks that everything runs
    python bench/musicgen.py --device cuda --dtype bfloat16
    python bench/musicgen.py --device cuda --dtype bfloat16 --engines transformers,wavecraft --prompts 8

Random weights at the musicgen-small decoder shape (1024 wide, 24 layers, 16 heads, 4 x 2048
codebooks), a 2-layer T5 text encoder (it runs once per call; t5-base's cost is the same for both
engines) and EnCodec at the 32 kHz shape. transformers builds the model and saves it; wavecraft
loads that folder, so both run the same weights. Sampling: top-k 250, CFG 3, one prompt (or
--prompts of them in one batch: how generation scales with the batch).

Reported per engine (each in its own process, one after the other): steady-state steps/s (middle
80% of the steps), end-to-end seconds (text encoding + all steps + codec decode), speed-ups over
transformers, the read-bandwidth bound (measured read bandwidth / weight bytes one step reads; KV
cache reads not counted) and the share of it reached, that share again against a bound that also
counts the KV-cache bytes an average steady-state step reads, time to first audio, peak memory and, for quantised engines, the logit
error and argmax-token agreement against fp32 (the quantised model decodes greedily with its KV
cache, fp32 scores the same steps teacher-forced).

The bandwidth. On CPU it is measured while the engine generates: every 50th step, one read of a
1 GB buffer (made before the run; its size is taken off the peak memory, its time out of the step
times and the end-to-end time), the faster of PyTorch's sum and a sum read as eight streams per
thread (`common.read_once`: the decode kernels keep several rows in flight, and read faster than
PyTorch's sum), and the bound uses the median of those probes, so a neighbour's busy spell lowers
the bound as it slows the steps. A probe before and one after generating (the
higher of the two) are reported beside it, and are the bound on GPU and with --quick.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from common import (CODEC_32K, CODEC_QUICK, StepClock, add_common_args, machine_line, peak_memory_mb, print_table,
                    read_bandwidth_gbs, read_once, reset_peak_memory, run_children, setup_threads, sync, timed)

PROMPT = "lofi beat with warm piano"
SMALL = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, ffn_dim=4096, vocab_size=2048)
QUICK = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, ffn_dim=128, vocab_size=2048)


def prompts(args: argparse.Namespace) -> list[str]:
    """The batch: --prompts distinct texts (distinct conditions, as real users send)."""
    return [PROMPT] + [f"{PROMPT}, take {i + 1}" for i in range(args.prompts - 1)]


def build(folder: Path, quick: bool) -> Path:
    """Write the random transformers checkpoint once (reused by later runs)."""
    if (folder / "config.json").exists():
        return folder
    import torch
    from transformers import EncodecConfig, MusicgenConfig, MusicgenDecoderConfig, MusicgenForConditionalGeneration, T5Config

    from wavecraft.models.tiny import tiny_t5_tokenizer

    dec = QUICK if quick else SMALL
    card = dec["vocab_size"]
    text = T5Config(vocab_size=40, d_model=32 if quick else 768, d_kv=8 if quick else 64, d_ff=64 if quick else 3072,
                    num_layers=2, num_heads=4 if quick else 12, decoder_start_token_id=0)
    audio = EncodecConfig(**(CODEC_QUICK if quick else CODEC_32K))
    decoder = MusicgenDecoderConfig(**dec, num_codebooks=4, pad_token_id=card, bos_token_id=card,
                                    decoder_start_token_id=card, dropout=0.0)
    torch.manual_seed(0)
    model = MusicgenForConditionalGeneration(MusicgenConfig(text_encoder=text, audio_encoder=audio, decoder=decoder)).eval()
    model.generation_config.pad_token_id = card
    model.generation_config.decoder_start_token_id = card
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    tiny_t5_tokenizer(folder)
    return folder


def step_bytes(lm) -> int:
    """Weight bytes one decode step reads: every linear layer but the cross-attention K/V
    projections, which run once per generation."""
    from wavecraft.lm.quantize import weight_bytes

    return weight_bytes(lm) - sum(weight_bytes(layer.cross_attn.kv_proj) for layer in lm.transformer.layers
                                  if layer.cross_attn is not None)


def kv_bytes_per_step(lm, steps: int, rows: int) -> float:
    """KV-cache bytes self-attention reads per step, averaged over the steady-state steps (the
    middle 80%, as `StepClock`): keys and values of every layer, every row (each prompt and its
    CFG null row), all filled positions."""
    import torch

    tr = lm.transformer
    itemsize = torch.empty(0, dtype=lm.kv_dtype or lm.dtype).element_size()
    per_position = 2 * len(tr.layers) * rows * tr.num_heads * tr.head_dim * itemsize
    first, last = steps // 10, steps - 1 - steps // 10
    return per_position * (first + last) / 2 + per_position  # mean filled length over the window


PROBE_MB = 1024  # the bandwidth probe's buffer: far larger than the 300 MB L3 of the development machine


class BandwidthProbe:
    """The read-bandwidth probe of `common.read_bandwidth_gbs` (`common.read_once` over a buffer),
    for use between steps: the buffer is made once, and its size is taken off the peak memory."""

    def __init__(self, megabytes: int = PROBE_MB) -> None:
        import torch

        self.megabytes = megabytes
        self.buffer = torch.ones(megabytes * 2**20 // 4)

    def __call__(self) -> float:
        return read_once(self.buffer)


def run_transformers(args: argparse.Namespace, folder: Path) -> dict:
    import torch
    from transformers import AutoTokenizer, LogitsProcessor, LogitsProcessorList, MusicgenForConditionalGeneration

    dtype = getattr(torch, args.dtype)
    hf = MusicgenForConditionalGeneration.from_pretrained(str(folder), dtype=dtype).to(args.device).eval()
    inputs = AutoTokenizer.from_pretrained(str(folder))(prompts(args), return_tensors="pt", padding=True).to(args.device)
    clock = StepClock(args.device)

    class Tick(LogitsProcessor):
        def __call__(self, input_ids, scores):
            clock.tick()
            return scores

    steps = int(args.seconds * 50) + 3  # frames + the delay pattern's 3 extra steps, as wavecraft
    kw = dict(do_sample=True, top_k=250, guidance_scale=3.0)
    with torch.inference_mode():
        hf.generate(**inputs, **kw, max_new_tokens=8)  # warm-up
        load_mb = peak_memory_mb(args.device)
        reset_peak_memory(args.device)
        torch.manual_seed(0)
        seconds, audio = timed(lambda: hf.generate(**inputs, **kw, max_new_tokens=steps,
                                                   logits_processor=LogitsProcessorList([Tick()])), args.device)
    return dict(engine="transformers", steps_per_s=clock.steady_steps_per_s(), median_steps_per_s=clock.median_steps_per_s(),
                e2e_s=seconds, ttfa_s=seconds,
                peak_mb=peak_memory_mb(args.device), load_mb=load_mb, samples=int(audio.shape[-1]))


def run_wavecraft(args: argparse.Namespace, folder: Path) -> dict:
    import torch

    from wavecraft.models.musicgen import MusicGen

    parts = args.engine.split("-")[1:]
    quant = next((p for p in parts if p in ("int8", "int4")), None)
    dtype = "bfloat16" if "bf16" in parts else args.dtype  # e.g. wavecraft-int8-bf16: no casts around kernels
    model = MusicGen.get_pretrained(folder, device=args.device, dtype=dtype, quantize=quant)
    model.cuda_graph = "nograph" not in parts
    model.set_generation_params(duration=0.2, top_k=250, cfg_coef=3.0)
    model.generate([PROMPT], seed=0)  # warm-up (and CUDA graph capture paths)
    load_mb = peak_memory_mb(args.device)
    bw_before = read_bandwidth_gbs(args.device)  # the machine's bandwidth drifts: probe on both sides
    probe = BandwidthProbe() if args.device == "cpu" and not args.quick else None  # after the loading peak
    clock = StepClock(args.device, probe=probe)
    reset_peak_memory(args.device)
    model.set_generation_params(duration=args.seconds, top_k=250, cfg_coef=3.0)
    model.set_custom_progress_callback(clock.tick)
    ttfa = None
    if "stream" in parts:
        import time

        pieces = []
        sync(args.device)
        start = time.perf_counter()
        for piece in model.generate_stream(prompts(args), seed=0):
            sync(args.device)
            ttfa = ttfa if ttfa is not None else time.perf_counter() - start - clock.paused
            pieces.append(piece)
        seconds, wav = time.perf_counter() - start, torch.cat(pieces, dim=-1)
    else:
        seconds, wav = timed(lambda: model.generate(prompts(args), seed=0), args.device)
        ttfa = None
    seconds -= clock.paused  # the bandwidth probes' own time
    ttfa = seconds if ttfa is None else ttfa
    peak = peak_memory_mb(args.device) - (probe.megabytes if probe is not None else 0)  # not the probe's buffer
    clock.probe = probe = None  # free the buffer before the last probe makes its own
    bw_outside = max(bw_before, read_bandwidth_gbs(args.device))  # the higher probe: the stricter bound
    bw = statistics.median(clock.probes) if clock.probes else bw_outside
    nbytes = step_bytes(model.lm)
    kv = kv_bytes_per_step(model.lm, len(clock.stamps), rows=2 * args.prompts)
    out = dict(engine=args.engine, steps_per_s=clock.steady_steps_per_s(), median_steps_per_s=clock.median_steps_per_s(),
               e2e_s=seconds, ttfa_s=ttfa,
               peak_mb=peak, load_mb=load_mb, samples=int(wav.shape[-1]), bandwidth_gbs=bw,
               bandwidth_outside_gbs=bw_outside, bandwidth_probes=len(clock.probes),
               step_gb=nbytes / 1e9, bound_steps_per_s=bw * 1e9 / nbytes, kv_gb=kv / 1e9,
               full_bound_steps_per_s=bw * 1e9 / (nbytes + kv))
    if quant is not None:
        out.update(quality(args, folder, model, frames=min(150, int(args.seconds * 50))))
    return out


def quality(args: argparse.Namespace, folder: Path, quantised, frames: int = 150) -> dict:
    """The quantised model decodes greedily (KV cache, conditional logits only, `frames` frames);
    the fp32 model scores the same step sequence teacher-forced. Compared: every step's logits
    (max and rms error, relative to the fp32 logits) and their argmax."""
    import torch

    from wavecraft.lm import GenerationParams, generate_codes
    from wavecraft.models.musicgen import MusicGen

    cond, _ = quantised.prepare_conditions([PROMPT])
    seen: dict[int, torch.Tensor] = {}
    codes = generate_codes(quantised.lm, frames, cond, GenerationParams(use_sampling=False, cfg_coef=1.0),
                           on_logits=lambda s, x: seen.__setitem__(s, x.float()))
    ref = MusicGen.get_pretrained(folder, device=args.device, dtype=args.dtype)
    sequence, _ = ref.lm.cfg.make_pattern(frames).build(codes, ref.lm.cfg.special_token)
    with torch.inference_mode():
        full = ref.lm(sequence, cond).float()  # [B, K, S, card]; step s's logits predict step s + 1
    steps = sorted(seen)
    q_logits = torch.stack([seen[s] for s in steps], dim=2)
    f_logits = full[:, :, [s - 1 for s in steps]]
    diff = q_logits - f_logits
    return dict(logit_err=float(diff.abs().max() / f_logits.abs().max()),
                logit_rms=float(diff.pow(2).mean().sqrt() / f_logits.pow(2).mean().sqrt()),
                agreement=float((q_logits.argmax(-1) == f_logits.argmax(-1)).float().mean()))


def quality_only(args: argparse.Namespace, folder: Path) -> None:
    """Quality figures need no quiet machine: they are the same wherever they are computed."""
    from wavecraft.models.musicgen import MusicGen

    setup_threads(args.threads)
    rows = []
    for mode in ("int8", "int4"):
        model = MusicGen.get_pretrained(folder, device=args.device, dtype=args.dtype, quantize=mode)
        rows.append(dict(engine=f"wavecraft-{mode}", **quality(args, folder, model)))
    print_table(rows, [("engine", "engine", "{}"), ("logit_err", "logit err (max)", "{:.4f}"),
                       ("logit_rms", "logit err (rms)", "{:.4f}"), ("agreement", "token agreement", "{:.3f}")],
                f"Quantisation quality vs fp32, {'quick shapes' if args.quick else 'musicgen-small shape'}, random "
                "weights, text condition: the quantised model decodes 150 frames greedily (KV cache), fp32 scores "
                "the same steps teacher-forced")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(p)
    p.add_argument("--seconds", type=float, default=None, help="audio to generate (default 10, --quick 1)")
    p.add_argument("--dtype", default="float32", help="model dtype for both engines (bfloat16 on GPU)")
    p.add_argument("--engines", default=None,
                   help="comma list among transformers, wavecraft[-int8|-int4][-bf16][-stream][-nograph] "
                        "(default: CPU transformers,wavecraft,wavecraft-stream,wavecraft-int8,wavecraft-int4; "
                        "GPU transformers,wavecraft-nograph,wavecraft,wavecraft-stream)")
    p.add_argument("--prompts", type=int, default=1, help="prompts generated together, one batch (default 1)")
    p.add_argument("--quality", action="store_true",
                   help="only the quantisation quality (int8, int4 vs fp32 on 150 decoded frames)")
    args = p.parse_args()
    if args.prompts < 1:
        p.error(f"--prompts must be at least 1, got {args.prompts}")
    args.seconds = args.seconds or (1.0 if args.quick else 10.0)
    folder = Path(args.workdir) / ("musicgen-quick" if args.quick else "musicgen-small-random")
    if args.quality:
        quality_only(args, build(folder, args.quick))
        return
    if args.engine:  # child: one engine, one JSON line
        setup_threads(args.threads)
        build(folder, args.quick)
        result = run_transformers(args, folder) if args.engine == "transformers" else run_wavecraft(args, folder)
        print(json.dumps(result))
        return
    build(folder, args.quick)
    gpu = args.device.startswith("cuda")
    default = ("transformers,wavecraft-nograph,wavecraft,wavecraft-stream" if gpu
               else "transformers,wavecraft,wavecraft-stream,wavecraft-int8,wavecraft-int4")
    engines = (args.engines or default).split(",")
    rows = run_children(Path(__file__).resolve(), engines, args,
                        ["--seconds", str(args.seconds), "--dtype", args.dtype, "--prompts", str(args.prompts)])
    ref = next((r for r in rows if r["engine"] == "transformers"), None)
    plain = next((r for r in rows if r["engine"] in ("wavecraft", "wavecraft-nograph")), None)
    if ref is not None and plain is not None:  # same weights and dtype: the same bytes per step
        ref["bound_steps_per_s"] = plain["bound_steps_per_s"]
        ref["full_bound_steps_per_s"] = plain["full_bound_steps_per_s"]  # its KV cache is fp32 too
    for r in rows:
        if ref is not None:
            r["speedup_e2e"] = ref["e2e_s"] / r["e2e_s"]
            r["speedup_steps"] = r["steps_per_s"] / ref["steps_per_s"]
        r["realtime"] = args.prompts * args.seconds / r["e2e_s"]
        if r.get("bound_steps_per_s"):
            r["bound_pct"] = 100 * r["steps_per_s"] / r["bound_steps_per_s"]
        if r.get("full_bound_steps_per_s"):
            r["full_bound_pct"] = 100 * r["steps_per_s"] / r["full_bound_steps_per_s"]
        if r.get("bound_steps_per_s") and r.get("median_steps_per_s"):
            r["median_bound_pct"] = 100 * r["median_steps_per_s"] / r["bound_steps_per_s"]
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print_table(rows, [
        ("engine", "engine", "{}"), ("steps_per_s", "steps/s", "{:.1f}"), ("e2e_s", "end-to-end s", "{:.2f}"),
        ("speedup_e2e", "x transformers (e2e)", "{:.2f}"), ("speedup_steps", "x transformers (steps/s)", "{:.2f}"),
        ("realtime", "audio s per s", "{:.1f}"),
        ("bound_steps_per_s", "bound steps/s", "{:.1f}"), ("bound_pct", "% of bound", "{:.0f}"),
        ("full_bound_pct", "% of bound with KV reads", "{:.0f}"),
        ("median_steps_per_s", "median-step steps/s", "{:.1f}"), ("median_bound_pct", "% of bound (median step)", "{:.0f}"),
        ("ttfa_s", "first audio s", "{:.2f}"), ("peak_mb", "peak MB (generating)", "{:.0f}"),
        ("load_mb", "peak MB (loading)", "{:.0f}"),
        ("logit_err", "logit err (max)", "{:.4f}"), ("logit_rms", "logit err (rms)", "{:.4f}"),
        ("agreement", "token agreement", "{:.3f}"),
    ], f"MusicGen {'quick shapes' if args.quick else 'musicgen-small shape'}, {args.seconds:g} s of audio, "
       f"{args.prompts} prompt(s), top-k 250, CFG 3, {args.dtype}; {machine_line(args)}")
    measured = [r for r in rows if r.get("bandwidth_gbs")]
    if measured:
        def source(r: dict) -> str:
            if r.get("bandwidth_probes"):
                return (f"{r['engine']} {r['bandwidth_gbs']:.1f} (median of {r['bandwidth_probes']} probes while "
                        f"generating; {r['bandwidth_outside_gbs']:.1f} before/after)")
            return f"{r['engine']} {r['bandwidth_gbs']:.1f} (before/after)"

        print(f"\nread bandwidth, GB/s: {'; '.join(source(r) for r in measured)}; "
              f"fp32 step reads {next((r['step_gb'] for r in rows if r['engine'] == 'wavecraft'), float('nan')):.3f} GB")


if __name__ == "__main__":
    sys.exit(main())
