"""Write a tiny General MIDI SoundFont 2 file: a sine for every program and a noise-burst drum kit.

It exists so the music renderer and builder can be tested, and smoke-built, on a machine without
the Debian soundfonts: every GM program (bank 0) plays the same looped sine, tuned so key 69 is
440 Hz, and every GM drum kit preset (bank 128) plays a decaying noise burst. The file is a few
kilobytes and follows the SF2 2.01 layout (RIFF 'sfbk' with INFO, sdta and pdta chunks).
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

_RATE = 44000  # 440 Hz is then exactly 100 samples per cycle, so the loop is seamless
_GEN_RELEASE, _GEN_INSTRUMENT, _GEN_SAMPLE_ID, _GEN_SAMPLE_MODES = 38, 41, 53, 54


def _chunk(tag: bytes, data: bytes) -> bytes:
    pad = b"\0" if len(data) % 2 else b""
    return tag + struct.pack("<I", len(data)) + data + pad


def _list(kind: bytes, *chunks: bytes) -> bytes:
    return _chunk(b"LIST", kind + b"".join(chunks))


def _name(text: str) -> bytes:
    return text.encode("ascii")[:19].ljust(20, b"\0")


def write_sine_soundfont(path: str | Path, drum_kits: tuple[int, ...] = (0, 8, 16, 24, 25, 32, 40, 48)) -> Path:
    """Write the test soundfont to `path` and return it."""
    sine = np.sin(2 * np.pi * 440 * np.arange(4400) / _RATE)
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(4400) * np.exp(-np.arange(4400) / (0.02 * _RATE)) * 0.5
    pcm = []
    starts = []
    for wave in (sine, noise):
        starts.append(sum(len(p) for p in pcm))
        pcm.append(np.clip(wave * 0.8 * 32767, -32768, 32767).astype("<i2"))
        pcm.append(np.zeros(46, dtype="<i2"))  # the spec asks for 46 zero samples after each sample
    smpl = b"".join(p.tobytes() for p in pcm)

    # Presets: 128 melodic programs -> instrument 0 (sine); drum kits -> instrument 1 (noise).
    presets = [(f"Sine {p}", p, 0, 0) for p in range(128)] + [(f"Drums {k}", k, 128, 1) for k in drum_kits]
    phdr, pbag, pgen = b"", b"", b""
    for i, (name, preset, bank, instrument) in enumerate(presets):
        phdr += _name(name) + struct.pack("<HHHIII", preset, bank, i, 0, 0, 0)
        pbag += struct.pack("<HH", i, 0)
        pgen += struct.pack("<Hh", _GEN_INSTRUMENT, instrument)
    phdr += _name("EOP") + struct.pack("<HHHIII", 0, 0, len(presets), 0, 0, 0)
    pbag += struct.pack("<HH", len(presets), 0)
    pgen += struct.pack("<Hh", 0, 0)

    # Instruments: sine (looped, short release) and noise (one shot); sampleID must come last.
    zones = [[(_GEN_RELEASE, -2400), (_GEN_SAMPLE_MODES, 1), (_GEN_SAMPLE_ID, 0)],
             [(_GEN_SAMPLE_ID, 1)]]
    inst, ibag, igen = b"", b"", b""
    gen_index = 0
    for i, gens in enumerate(zones):
        inst += _name(["Sine", "Noise"][i]) + struct.pack("<H", i)
        ibag += struct.pack("<HH", gen_index, 0)
        for oper, amount in gens:
            igen += struct.pack("<Hh", oper, amount)
        gen_index += len(gens)
    inst += _name("EOI") + struct.pack("<H", len(zones))
    ibag += struct.pack("<HH", gen_index, 0)
    igen += struct.pack("<Hh", 0, 0)

    shdr = b""
    for i, (start, key, loop) in enumerate([(starts[0], 69, (2200, 4400)), (starts[1], 60, (0, 0))]):
        ls, le = (start + loop[0], start + loop[1]) if loop[1] else (start, start + 4400)
        shdr += _name(["sine", "noise"][i]) + struct.pack("<IIIIIBbHH", start, start + 4400, ls, le, _RATE, key, 0, 0, 1)
    shdr += _name("EOS") + struct.pack("<IIIIIBbHH", 0, 0, 0, 0, 0, 0, 0, 0, 0)

    body = b"sfbk" + _list(b"INFO", _chunk(b"ifil", struct.pack("<HH", 2, 1)), _chunk(b"isng", b"EMU8000\0"),
                           _chunk(b"INAM", b"wavecraft sine test\0")) \
        + _list(b"sdta", _chunk(b"smpl", smpl)) \
        + _list(b"pdta", _chunk(b"phdr", phdr), _chunk(b"pbag", pbag), _chunk(b"pmod", b"\0" * 10),
                _chunk(b"pgen", pgen), _chunk(b"inst", inst), _chunk(b"ibag", ibag), _chunk(b"imod", b"\0" * 10),
                _chunk(b"igen", igen), _chunk(b"shdr", shdr))
    path = Path(path)
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path
