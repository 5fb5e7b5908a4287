"""Small C kernels for the memory-bound inner loops, compiled on first use with the system C compiler.

* `int8_matmul.c` (LM decoding): PyTorch's weight-only int8 CPU kernel
  (`aten._weight_int8pack_mm`) streams its weights from memory at about half the speed of an fp32
  matrix-vector product (8-10 GB/s against 19 GB/s, measured on the 2-core development machine
  with the weights far larger than the caches), and it rounds the activations to bfloat16. This
  kernel walks four weight rows at once with software prefetch; on CPUs with AVX512-VNNI it
  carries each activation row as two int8 pieces (~15 bits) and multiplies with `vpdpbusd`
  (16-21 GB/s there), elsewhere it keeps fp32 activations (13-18 GB/s).
* `elementwise.c` (the codec's ELU): PyTorch's ELU is bound by its exponential; this one is ~4x
  faster and writes into strided views (streaming puts each piece behind a few kept samples
  without another copy), channels-last ones included. `vecmath.h` holds the vectorised expm1 the
  ELU and LSTM kernels use.
* `attention.c` (LM decoding): one query position against the KV cache. PyTorch's CPU attention
  has a fixed cost of ~75 us a call and reads a 250-position bfloat16 cache at half the memory's
  speed; this reads it at the memory's speed, fp32 or bfloat16 cache, fp32 query and output.
* `decode_step.c` (LM decoding, int8 or fp32 weights): a whole decode step, every layer, in one
  call and one thread team, from the same pieces as the kernels above (`int8_rows.h`,
  `attention_pair.h`): driving the step from Python costs ~15 calls and thread-team starts per
  layer.
* `resblock.c` (the codec's residual blocks at inference): ELU -> 3-tap convolution -> ELU -> 1x1
  convolution -> identity skip in one call over channels-last rows, each thread on tiles of 48
  output rows whose ELU'd input, hidden rows and products stay in L1/L2. As six PyTorch calls the
  blocks at 64-128 channels ran at a third of the machine's GEMM speed (every pass streams the
  full-rate activations; 32-64 output columns are too narrow for the BLAS's blocking); fused,
  1.3-1.8x faster per block. Used while both convolutions' weights fit in L2 (up to 256
  channels in the 32 kHz codec).
* `read_probe.c` (benchmarks only): a sum read as several streams per thread, to measure the
  read bandwidth the decode kernels can reach.
* `lstm.c` (the codec's LSTM at batch <= 4): one recurrent layer over a whole piece of time in a
  single call. Every step is a matrix-vector product with the 16 MB recurrent matrix (read from
  L3), so it walks each hidden unit's four gate rows at once, alternates the direction of that walk
  step by step (the rows read last are still in the core's L2 when the next step starts), lets
  pairs of threads meet wherever their speeds put them on every other step (no thread waits for
  a slower one), and does the gate arithmetic vectorised on the same threads: 0.30-0.36 ms per
  step against `nn.LSTM`'s 0.45-0.55 ms at the 32 kHz codec's 1024 units.

The library is built once per source version and machine into the cache folder
(`$WAVECRAFT_CACHE`, default `~/.cache/wavecraft/kernels`) with `cc -O3 -mavx512f -mavx512bw
-mavx512dq -fopenmp` and loaded with ctypes; OpenMP resolves to the runtime PyTorch already
loaded, so the kernels run on PyTorch's threads. Without an x86-64 CPU with AVX-512 (F, BW, DQ),
a C compiler, or with `WAVECRAFT_C_KERNELS=0`, every kernel getter here returns None and callers
use PyTorch.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Callable

import torch

SOURCES = sorted(Path(__file__).parent.glob("*.c"))
HEADERS = sorted(Path(__file__).parent.glob("*.h"))
FLAGS = ["-O3", "-mavx512f", "-mavx512bw", "-mavx512dq", "-fopenmp", "-shared", "-fPIC"]


@lru_cache(maxsize=1)
def _cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux on x86-64), empty elsewhere."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return frozenset()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return frozenset(line.partition(":")[2].split())


def _cpu_has_avx512() -> bool:
    return {"avx512f", "avx512bw", "avx512dq"} <= _cpu_flags()


def cache_folder() -> Path:
    return Path(os.environ.get("WAVECRAFT_CACHE", Path.home() / ".cache" / "wavecraft")) / "kernels"


def _build(compiler: str) -> Path:
    source = b"".join(path.read_bytes() for path in SOURCES + HEADERS)
    tag = hashlib.sha256(source + " ".join(FLAGS).encode() + compiler.encode()).hexdigest()[:16]
    target = cache_folder() / f"wavecraft-kernels-{tag}.so"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:  # same file system: the rename is atomic
        built = Path(tmp) / target.name
        subprocess.run([compiler, *FLAGS, *map(str, SOURCES), "-o", str(built)], check=True, capture_output=True,
                       timeout=120)
        os.replace(built, target)
    return target


@lru_cache(maxsize=1)
def _library() -> ctypes.CDLL | None:
    if os.environ.get("WAVECRAFT_C_KERNELS", "1") == "0" or not _cpu_has_avx512():
        return None
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        return None
    try:
        lib = ctypes.CDLL(str(_build(compiler)))
    except (OSError, subprocess.SubprocessError) as err:
        detail = getattr(err, "stderr", b"") or b""
        warnings.warn(f"wavecraft: the C kernels could not be built ({err} {detail.decode(errors='replace')[:200]}); "
                      "using PyTorch's", stacklevel=3)
        return None
    pointer, size = ctypes.c_void_p, ctypes.c_int64
    lib.wavecraft_int8_matmul.argtypes = [pointer, size, pointer, pointer, pointer, pointer, size, size, size, size]
    lib.wavecraft_lstm_layer.argtypes = [pointer, pointer, pointer, pointer, pointer, size, size, size]
    for fn in (lib.wavecraft_int8_matmul, lib.wavecraft_lstm_layer):
        fn.restype = ctypes.c_int
    lib.wavecraft_elu.argtypes = [pointer, size, size, size, pointer, size]
    lib.wavecraft_elu.restype = None
    lib.wavecraft_gelu.argtypes = [pointer, pointer, size]
    lib.wavecraft_gelu.restype = None
    lib.wavecraft_attention_decode.argtypes = [pointer, size, size, pointer, pointer, size, size, size, size, size,
                                               size, ctypes.c_float, pointer, size, pointer, size]
    lib.wavecraft_attention_decode.restype = ctypes.c_int
    lib.wavecraft_decode_step.argtypes = [pointer, size, size, size, size, size, pointer, size, size, size, size, size,
                                          pointer, size, size, size, pointer, size, size, ctypes.c_float, pointer]
    lib.wavecraft_decode_step.restype = ctypes.c_int
    lib.wavecraft_decode_slots.restype = ctypes.c_int
    lib.wavecraft_resblock.argtypes = [pointer, size, pointer, size, size, size, size, pointer, pointer, size, pointer, pointer,
                                       pointer]
    lib.wavecraft_resblock.restype = ctypes.c_int
    lib.wavecraft_stream_sum.argtypes = [pointer, size, size]
    lib.wavecraft_stream_sum.restype = ctypes.c_double
    return lib


def _cpu_has_vnni() -> bool:
    return "avx512_vnni" in _cpu_flags()


VNNI_MAX_K = 16384  # the kernel's activation buffer
INT8_MAX_ROWS = 4  # int8_rows.h MAX_ROWS


@lru_cache(maxsize=4)
def int8_matmul(split_activations: bool | None = None
                ) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor] | None:
    """`f(x, qweight, scales, bias, gelu=False)` -> x @ (qweight * scales[:, None]).T (+ bias), then
    GELU if asked (as `F.gelu` to a few 1e-7), for CPU fp32 x [M, K] with M <= INT8_MAX_ROWS and a weight
    `int8_matmul_fits` accepts (int8 [N, K]), fp32 scales [N]; None when the kernel is not
    available here. `split_activations`: multiply with the activations as two int8 pieces (~15
    bits; AVX512-VNNI, K % 64 == 0) or in fp32 (False); None: the pieces wherever they apply."""
    lib = _library()
    if lib is None or (split_activations and not _cpu_has_vnni()):
        return None
    call = lib.wavecraft_int8_matmul
    vnni = _cpu_has_vnni() if split_activations is None else split_activations

    def run(x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None,
            gelu: bool = False) -> torch.Tensor:
        x = x.contiguous()
        M, K = x.shape
        N = qweight.shape[0]
        y = torch.empty(M, N, dtype=torch.float32)
        pieces = 2 if vnni and K % 64 == 0 and K <= VNNI_MAX_K else 0
        if split_activations and not pieces:
            raise ValueError(f"int8 kernel: split activations need K a multiple of 64 up to {VNNI_MAX_K}, got {K}")
        status = call(x.data_ptr(), M, qweight.data_ptr(), scales.data_ptr(), 0 if bias is None else bias.data_ptr(),
                      y.data_ptr(), N, K, pieces, int(gelu))
        if status:
            raise ValueError(f"int8 kernel: unsupported shapes x {tuple(x.shape)}, weight {tuple(qweight.shape)}")
        return y

    return run


def int8_matmul_fits(qweight: torch.Tensor) -> bool:
    """Whether the kernel can take this weight (CPU, contiguous, rows a multiple of 16 long)."""
    return qweight.is_cpu and qweight.is_contiguous() and qweight.dim() == 2 and qweight.shape[1] % 16 == 0


LSTM_MAX_BATCH = 4


@lru_cache(maxsize=1)
def lstm_layer() -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None:
    """`f(gates_x, weight_hh, h0, c)` -> hidden states [T, B, H] of one LSTM layer (torch's gate
    order i, f, g, o), for CPU fp32 tensors with B <= LSTM_MAX_BATCH and H a multiple of 16:
    `gates_x` [T, B, 4H] holds the input projections plus both biases, `weight_hh` [4H, H] the
    recurrent weights, `h0` [B, H] the first hidden state; `c` [B, H], the first cell state, is
    overwritten with the last. None when the kernel is not available here."""
    lib = _library()
    if lib is None:
        return None
    call = lib.wavecraft_lstm_layer

    def run(gates_x: torch.Tensor, weight_hh: torch.Tensor, h0: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        T, B, four_h = gates_x.shape
        H = four_h // 4
        tensors = (gates_x, weight_hh, h0, c)
        if (any(t.dtype != torch.float32 or not t.is_cpu or not t.is_contiguous() for t in tensors)
                or weight_hh.shape != (4 * H, H) or h0.shape != (B, H) or c.shape != (B, H)):
            raise ValueError("lstm kernel: expects contiguous CPU float32 gates [T, B, 4H], weight [4H, H], "
                             f"h0 and c [B, H]; got {[tuple(t.shape) for t in tensors]}")
        out = torch.empty(T, B, H, dtype=torch.float32)
        if T and call(gates_x.data_ptr(), weight_hh.data_ptr(), h0.data_ptr(), c.data_ptr(), out.data_ptr(), T, B, H):
            raise ValueError(f"lstm kernel: unsupported batch {B} or hidden size {H} (batch <= {LSTM_MAX_BATCH}, "
                             "hidden a multiple of 16)")
        return out

    return run


@lru_cache(maxsize=1)
def resblock() -> Callable[..., torch.Tensor] | None:
    """`f(x, w1, b1, w2, b2, skip, head=None)` -> one SEANet residual block with an identity
    shortcut, `x[i + skip] + b2 + elu(b1 + sum_j elu(x[i + j]) w1[j]) w2` for every output row i,
    on channels-last CPU fp32 tensors (codec/layout.py): x [B, C, L] already padded, w1 [k, C, H]
    (tap, input, output), b1 [H], w2 [H, C], b2 [C]; `head` [B, C, h] (streaming: the samples kept
    from the previous piece) is read as if joined in front of x. Returns a channels-last
    [B, C, h + L - k + 1]. C and H multiples of 16. None when the kernel is not available here."""
    lib = _library()
    if lib is None:
        return None
    call = lib.wavecraft_resblock

    def run(x: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor, skip: int,
            head: torch.Tensor | None = None) -> torch.Tensor:
        B, C, L = x.shape
        k, _, H = w1.shape
        weights = (w1, b1, w2, b2)
        parts = [x] if head is None or head.shape[-1] == 0 else [head, x]
        rows = [_rows(p) for p in parts]
        if (any(r is None or r[0] != "nwc" for r in rows) or any(p.shape[:2] != (B, C) for p in parts)
                or any(t.dtype != torch.float32 or not t.is_cpu or not t.is_contiguous() for t in weights)
                or w1.shape != (k, C, H) or b1.shape != (H,) or w2.shape != (H, C) or b2.shape != (C,)):
            raise ValueError("resblock kernel: expects channels-last CPU float32 x and head [B, C, L] and contiguous "
                             f"w1 [k, C, H], b1 [H], w2 [H, C], b2 [C]; got {[tuple(t.shape) for t in (*parts, *weights)]}")
        head_rows = parts[0].shape[-1] if len(parts) == 2 else 0
        n = head_rows + L - k + 1
        out = torch.empty(B, max(n, 0), C, dtype=torch.float32)
        for b in range(B):
            head_ptr = parts[0][b].data_ptr() if head_rows else 0
            if n > 0 and call(head_ptr, head_rows, x[b].data_ptr(), n, C, k, skip, w1.data_ptr(), b1.data_ptr(), H,
                              w2.data_ptr(), b2.data_ptr(), out[b].data_ptr()):
                raise ValueError(f"resblock kernel: unsupported sizes C={C}, H={H}, k={k}, skip={skip} "
                                 "(C and H multiples of 16, 0 <= skip < k)")
        return out.transpose(1, 2)

    return run


def _rows(t: torch.Tensor) -> tuple[str, int, int, int] | None:
    """(order, rows, row length, row stride) when t is fp32 on the CPU and made of evenly spaced
    rows of contiguous memory: "ncw" rows along the last axis (a contiguous tensor, or a slice of
    one along its last axis), or "nwc" rows of a whole [C, T] item of a channels-last [B, C, T]
    view (codec/layout.py). Else None."""
    if t.dtype != torch.float32 or not t.is_cpu or t.dim() < 1:
        return None
    if t.dim() == 3 and t.shape[1] > 1 and t.stride(1) == 1 and (t.shape[2] == 1 or t.stride(2) == t.shape[1]):
        return "nwc", t.shape[0], t.shape[1] * t.shape[2], t.stride(0)
    if t.shape[-1] > 1 and t.stride(-1) != 1:
        return None
    if t.dim() == 1:
        return "ncw", 1, t.shape[-1], t.shape[-1]
    rows, stride = 1, t.stride(-2)
    for size, step in zip(reversed(t.shape[:-1]), reversed(t.stride()[:-1])):
        if size > 1 and step != rows * stride:
            return None
        rows *= size
    return "ncw", rows, t.shape[-1], stride


@lru_cache(maxsize=1)
def elu() -> Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor] | None:
    """`f(x, out=None)` -> ELU(x) (alpha 1) for CPU fp32 x, written into `out` (same shape; it may
    be a view into a larger tensor along the last axis) or a new tensor. None when the kernel is
    not available here; inputs it cannot address fall back to PyTorch's ELU."""
    lib = _library()
    if lib is None:
        return None
    call = lib.wavecraft_elu

    def run(x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        if out is None:
            out = torch.empty_like(x, dtype=torch.float32)  # the same layout as x
        elif out.shape != x.shape:
            raise ValueError(f"elu kernel: out has shape {tuple(out.shape)}, input {tuple(x.shape)}")
        xr, yr = _rows(x), _rows(out)
        if xr is None or yr is None or xr[:3] != yr[:3] or x.numel() == 0:
            return out.copy_(torch.nn.functional.elu(x))
        call(x.data_ptr(), xr[1], xr[2], xr[3], out.data_ptr(), yr[3])
        return out

    return run


ATTENTION_HEAD_DIMS = (32, 64, 128)
ATTENTION_MAX_POSITIONS = 16384


@lru_cache(maxsize=1)
def attention_decode() -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None],
                                   torch.Tensor | None] | None:
    """`f(q, k, v, mask)` -> SDPA(q, k, v, attn_mask=mask) for one query position, or None when
    the inputs are outside what the kernel takes (the caller then runs SDPA): q [B, H, 1, hd]
    fp32 on the CPU, k and v [B, H, n, hd] fp32 or bfloat16 with equal strides and contiguous
    rows of hd (a KV cache buffer sliced along positions), hd in ATTENTION_HEAD_DIMS, mask None
    or bool [B, 1, 1, n] (True: attend). Returns [B, H, 1, hd] fp32. None when the kernel is not
    available here."""
    lib = _library()
    if lib is None:
        return None
    call = lib.wavecraft_attention_decode

    def run(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor | None:
        if q.dim() != 4 or k.dim() != 4 or q.shape[2] != 1:
            return None
        B, H, n, hd = k.shape
        if (q.dtype != torch.float32 or not q.is_cpu or k.dtype not in (torch.float32, torch.bfloat16)
                or v.dtype != k.dtype or v.shape != k.shape or v.stride() != k.stride() or q.shape != (B, H, 1, hd)
                or hd not in ATTENTION_HEAD_DIMS or not 1 <= n <= ATTENTION_MAX_POSITIONS
                or k.stride(3) != 1 or k.stride(2) != hd or q.stride(3) != 1 or not k.is_cpu):
            return None
        allowed, allowed_stride = 0, 0
        if mask is not None:
            if (mask.dtype != torch.bool or mask.dim() != 4 or mask.shape[1:3] != (1, 1) or mask.shape[3] != n
                    or mask.shape[0] not in (1, B) or mask.stride(3) != 1):
                return None
            allowed, allowed_stride = mask.data_ptr(), mask.stride(0) if mask.shape[0] == B else 0
        out = torch.empty(B, H, 1, hd, dtype=torch.float32)
        status = call(q.data_ptr(), q.stride(0), q.stride(1), k.data_ptr(), v.data_ptr(), k.stride(0), k.stride(1),
                      B, H, n, hd, hd ** -0.5, allowed, allowed_stride, out.data_ptr(), int(k.dtype == torch.bfloat16))
        return None if status else out

    return run


@lru_cache(maxsize=1)
def gelu() -> Callable[[torch.Tensor], torch.Tensor] | None:
    """`f(x)` -> GELU(x) (erf form, as `F.gelu` to a few 1e-7) written over x in place, for a
    contiguous CPU fp32 x (other inputs: `F.gelu`, a new tensor). None when the kernel is not
    available here."""
    lib = _library()
    if lib is None:
        return None
    call = lib.wavecraft_gelu

    def run(x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.float32 or not x.is_cpu or not x.is_contiguous():
            return torch.nn.functional.gelu(x)
        call(x.data_ptr(), x.data_ptr(), x.numel())
        return x

    return run


# The fused step's table: one row per layer of these pointers (decode_step.c's slots, in order).
DECODE_STEP_SLOTS = ("ln1_w", "ln1_b", "qkv_q", "qkv_s", "out_q", "out_s", "lnc_w", "lnc_b", "cq_q", "cq_s", "co_q",
                     "co_s", "cross_k", "cross_v", "ln2_w", "ln2_b", "up_q", "up_s", "down_q", "down_s", "cache_k",
                     "cache_v", "fold_a", "fold_c", "fold_bias")


@lru_cache(maxsize=1)
def decode_step() -> Callable[..., None] | None:
    """`f(x, layers, fp32=, heads=, ffn=, t=, cache=, self_allowed=, live=, cond_length=, cross_keys=,
    cross_allowed=, eps=, scratch=)` runs one decode step of every layer over x [B, D] (fp32,
    contiguous, B <= INT8_MAX_ROWS), in place (wavecraft/kernels/decode_step.c): `layers` int64
    [L, len(DECODE_STEP_SLOTS)] of data pointers (the *_q slots int8 weights with fp32 *_s scales,
    or fp32 weights when `fp32`), `cache` one layer's KV buffer (all layers alike:
    [B, H, max_len, hd], fp32 or bfloat16), `self_allowed` bool [B | 1, max_len] or None, `live`
    the leading rows that get cross-attention over `cond_length` keys, `cross_keys` one layer's
    cross keys ([live, H, S, hd], contiguous) or None, `cross_allowed` bool [live, S] or None,
    `scratch` fp32 of `decode_scratch_size(B, D, ffn, H * S)`. Raises ValueError for inputs the
    kernel does not take. None without the kernels; int8 weights also need AVX512-VNNI
    (`decode_step_takes_int8`)."""
    lib = _library()
    if lib is None:
        return None
    if lib.wavecraft_decode_slots() != len(DECODE_STEP_SLOTS):
        raise RuntimeError("wavecraft: decode_step.c and DECODE_STEP_SLOTS disagree")
    call = lib.wavecraft_decode_step

    def run(x: torch.Tensor, layers: torch.Tensor, *, fp32: bool, heads: int, ffn: int, t: int, cache: torch.Tensor,
            self_allowed: torch.Tensor | None, live: int, cond_length: int, cross_keys: torch.Tensor | None,
            cross_allowed: torch.Tensor | None, eps: float, scratch: torch.Tensor) -> None:
        B, D = x.shape
        S = cond_length
        ok = (x.dtype == torch.float32 and x.is_contiguous() and layers.dtype == torch.int64 and layers.is_contiguous()
              and layers.shape[1] == len(DECODE_STEP_SLOTS) and cache.dim() == 4 and cache.shape[:2] == (B, heads)
              and cache.dtype in (torch.float32, torch.bfloat16) and cache.stride(3) == 1
              and cache.stride(2) == cache.shape[3] and 0 <= t < cache.shape[2] and 0 <= live <= B
              and scratch.numel() >= decode_scratch_size(B, D, ffn, heads * S) and scratch.dtype == torch.float32)
        cross_bf16 = 0
        if cross_keys is not None:
            ok = ok and cross_keys.is_contiguous() and cross_keys.shape[:3] == (live, heads, S)
            ok = ok and cross_keys.dtype in (torch.float32, torch.bfloat16)
            cross_bf16 = int(cross_keys.dtype == torch.bfloat16)
        for flags, rows, width in ((self_allowed, B, t + 1), (cross_allowed, live, S)):
            if flags is not None:
                ok = ok and flags.dtype == torch.bool and flags.dim() == 2 and flags.stride(1) == 1
                ok = ok and flags.shape[0] in (1, rows) and flags.shape[1] >= width
        if not ok or call(x.data_ptr(), B, D, heads, ffn, layers.shape[0], layers.data_ptr(), int(fp32), t,
                          cache.stride(0), cache.stride(1), int(cache.dtype == torch.bfloat16),
                          0 if self_allowed is None else self_allowed.data_ptr(), _row_stride(self_allowed, B), live, S,
                          0 if cross_allowed is None else cross_allowed.data_ptr(), _row_stride(cross_allowed, live),
                          cross_bf16, eps, scratch.data_ptr()):
            raise ValueError(f"decode step: unsupported inputs (x {tuple(x.shape)}, cache {tuple(cache.shape)} "
                             f"{cache.dtype}, heads {heads}, ffn {ffn}, t {t}, live {live})")

    return run


def decode_step_takes_int8() -> bool:
    """Whether `decode_step` runs int8 weights here (it needs AVX512-VNNI)."""
    return _library() is not None and _cpu_has_vnni()


def _row_stride(flags: torch.Tensor | None, rows: int) -> int:
    return 0 if flags is None or flags.shape[0] != rows or rows == 1 else flags.stride(0)


def decode_step_fits(batch: int, dim: int, heads: int, ffn: int, positions: int, cond_length: int) -> bool:
    """Whether `decode_step` takes a model of this shape (a cache of `positions`, a condition of
    `cond_length` tokens)."""
    return (1 <= batch <= INT8_MAX_ROWS and dim % 64 == 0 and ffn % 64 == 0 and max(dim, ffn) <= VNNI_MAX_K
            and dim % heads == 0 and dim // heads in ATTENTION_HEAD_DIMS
            and max(positions, cond_length) <= ATTENTION_MAX_POSITIONS)


def fold_width(scores: int) -> int:
    """Rows of a folded cross-attention's A^T (and columns of its C^T) for H * S scores: rounded up to 16."""
    return (scores + 15) // 16 * 16


def decode_scratch_size(batch: int, dim: int, ffn: int, scores: int = 0) -> int:
    """fp32 numbers of scratch `decode_step` needs (activations, folded scores, int8 pieces)."""
    return 5 * batch * dim + batch * ffn + batch * fold_width(scores) + (2 * batch * max(dim, ffn) + 3) // 4


@lru_cache(maxsize=1)
def stream_sum() -> Callable[[torch.Tensor, int], float] | None:
    """`f(x, streams)` -> the sum of a contiguous CPU fp32 tensor, each thread reading its share as
    `streams` (1-8) interleaved streams: the benchmarks' read-bandwidth probe. None when the
    kernels are not available here."""
    lib = _library()
    if lib is None:
        return None
    call = lib.wavecraft_stream_sum

    def run(x: torch.Tensor, streams: int = 8) -> float:
        if x.dtype != torch.float32 or not x.is_cpu or not x.is_contiguous():
            raise ValueError("stream_sum: expects a contiguous CPU float32 tensor")
        return call(x.data_ptr(), x.numel(), streams)

    return run
