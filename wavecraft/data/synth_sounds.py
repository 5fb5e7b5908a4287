"""Synthesised sound effects (numpy only) to fill classes the game packages lack.

Each generator is a small physical caricature: a siren is a swept tone with harmonics, rain is
filtered noise plus thousands of tiny drop clicks, an engine is a pulse train at the firing
frequency. None sounds like a field recording, but each has the spectral and temporal signature
its caption names, which is what a small text-to-audio model can learn from. Every generator takes
a random generator, a sample rate and a duration and returns (audio, caption, sound_class, labels).
"""
from __future__ import annotations

import random
from typing import Callable

import numpy as np

Result = tuple[np.ndarray, str, str, list[str]]


def _np(rng: random.Random) -> np.random.Generator:
    return np.random.default_rng(rng.getrandbits(32))


def shape_noise(x: np.ndarray, sr: int, gain: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Filter by a zero-phase gain curve in the frequency domain (static spectrum shaping)."""
    spec = np.fft.rfft(x)
    return np.fft.irfft(spec * gain(np.fft.rfftfreq(len(x), 1.0 / sr)), len(x))


def band(lo: float, hi: float, slope: float = 2.0) -> Callable[[np.ndarray], np.ndarray]:
    def gain(f: np.ndarray) -> np.ndarray:
        f = np.maximum(f, 1.0)
        return 1.0 / (1.0 + (lo / f) ** (2 * slope)) / (1.0 + (f / hi) ** (2 * slope))
    return gain


def moving_band(x: np.ndarray, sr: int, lo: np.ndarray, hi: np.ndarray, frame: int = 1024) -> np.ndarray:
    """Time-varying band-pass: Hann frames at 50 % overlap (sums to one), a band per frame."""
    hop = frame // 2
    n = len(x)
    pad = np.concatenate([np.zeros(hop), x, np.zeros(frame)])
    out = np.zeros_like(pad)
    win = np.hanning(frame + 1)[:-1]
    freqs = np.maximum(np.fft.rfftfreq(frame, 1.0 / sr), 1.0)
    for i, start in enumerate(range(0, len(pad) - frame, hop)):
        t = min(n - 1, max(0, start - hop + frame // 2))
        g = 1.0 / (1.0 + (lo[t] / freqs) ** 4) / (1.0 + (freqs / hi[t]) ** 4)
        out[start : start + frame] += np.fft.irfft(np.fft.rfft(pad[start : start + frame] * win) * g, frame)
    return out[hop : hop + n]


def smooth_random(rng: np.random.Generator, n: int, sr: int, rate: float) -> np.ndarray:
    """A slowly wandering curve in [0, 1] (random points every 1/rate s, cosine-interpolated)."""
    points = rng.random(int(n / sr * rate) + 3)
    t = np.arange(n) / sr * rate
    i = t.astype(int)
    frac = (1 - np.cos(np.pi * (t - i))) / 2
    return points[i] * (1 - frac) + points[i + 1] * frac


def tone(freq: np.ndarray | float, n: int, sr: int, harmonics: tuple[float, ...] = (1.0,)) -> np.ndarray:
    f = np.broadcast_to(np.asarray(freq, dtype=np.float64), (n,))
    phase = 2 * np.pi * np.cumsum(f) / sr
    return sum(a * np.sin((k + 1) * phase) for k, a in enumerate(harmonics))


def decay(n: int, sr: int, seconds: float) -> np.ndarray:
    return np.exp(-np.arange(n) / sr / max(seconds, 1e-4))


def place(out: np.ndarray, event: np.ndarray, at: int, gain: float = 1.0) -> None:
    end = min(len(out), at + len(event))
    if 0 <= at < end:
        out[at:end] += gain * event[: end - at]


def siren(rng: random.Random, sr: int, seconds: float) -> Result:
    n = int(sr * seconds)
    t = np.arange(n) / sr
    kind = rng.choice(["wail", "yelp", "two-tone"])
    if kind == "wail":
        f = 900 + 450 * np.sin(2 * np.pi * t / rng.uniform(2.5, 5.0))
    elif kind == "yelp":
        f = 900 + 450 * np.sin(2 * np.pi * t * rng.uniform(3.0, 5.0))
    else:
        f = np.where((t * rng.uniform(0.8, 1.4)) % 1 < 0.5, rng.uniform(430, 470), rng.uniform(570, 620))
    x = np.tanh(2.5 * tone(f, n, sr, (1.0, 0.3, 0.2, 0.1)))
    caption = {"wail": "an ambulance siren wailing", "yelp": "a police siren yelping",
               "two-tone": "a two-tone emergency siren"}[kind]
    return x, caption, "siren", ["siren", kind]


def engine(rng: random.Random, sr: int, seconds: float) -> Result:
    g = _np(rng)
    n = int(sr * seconds)
    kind = rng.choice(["car idle", "car revving", "motorcycle", "truck"])
    rpm0 = {"car idle": 800, "car revving": 1000, "motorcycle": 1400, "truck": 600}[kind]
    cylinders = {"car idle": 4, "car revving": 4, "motorcycle": 2, "truck": 6}[kind]
    rpm = rpm0 * (1 + 0.05 * smooth_random(g, n, sr, 2.0))
    if kind in ("car revving", "motorcycle"):
        env = np.clip(np.sin(np.pi * np.arange(n) / n * rng.uniform(1, 3)), 0, None) ** 2
        rpm = rpm * (1 + 2.5 * env)
    fire = rpm / 60 * cylinders / 2
    x = tone(fire, n, sr, tuple(1 / (k + 1) ** 0.7 for k in range(12)))
    x = np.tanh(1.5 * x) + 0.3 * shape_noise(g.standard_normal(n), sr, band(80, 1500))
    caption = {"car idle": "a car engine idling", "car revving": "a car engine revving",
               "motorcycle": "a motorcycle engine accelerating", "truck": "a truck engine rumbling"}[kind]
    return x, caption, "engine", ["engine", kind]


def wind(rng: random.Random, sr: int, seconds: float) -> Result:
    g = _np(rng)
    n = int(sr * seconds)
    strength = rng.choice(["gentle", "strong", "howling"])
    gust = smooth_random(g, n, sr, rng.uniform(0.3, 1.0))
    centre = 250 + (900 if strength == "howling" else 500) * gust
    x = moving_band(g.standard_normal(n), sr, centre * 0.6, centre * (1.3 if strength == "howling" else 2.5))
    x *= 0.3 + gust * (1.5 if strength != "gentle" else 0.7)
    caption = {"gentle": "a gentle breeze blowing", "strong": "strong gusts of wind",
               "howling": "wind howling"}[strength]
    return x, caption, "wind", ["wind", strength]


def rain(rng: random.Random, sr: int, seconds: float) -> Result:
    g = _np(rng)
    n = int(sr * seconds)
    heavy = rng.random() < 0.5
    bed = shape_noise(g.standard_normal(n), sr, band(300, 6000 if heavy else 9000, 1.0))
    drops = np.zeros(n)
    count = int(seconds * (900 if heavy else 150))
    m = int(0.004 * sr)
    # Drops ring at many pitches (a single one would leave a tonal line in the spectrum).
    clicks = [decay(m, sr, 0.0008) * np.sin(2 * np.pi * f * np.arange(m) / sr) for f in np.geomspace(1200, 7000, 12)]
    for at, k in zip(g.integers(0, n, count), g.integers(0, len(clicks), count)):
        place(drops, clicks[int(k)], int(at), float(g.uniform(0.2, 1.0)))
    x = (0.8 if heavy else 0.3) * bed / (np.abs(bed).max() + 1e-9) + drops / (np.abs(drops).max() + 1e-9)
    return x, "heavy rain pouring" if heavy else "light rain pattering", "rain", ["rain", "heavy" if heavy else "light"]


def beeps(rng: random.Random, sr: int, seconds: float) -> Result:
    n = int(sr * seconds)
    kind = rng.choice(["alarm clock", "reversing", "microwave", "smoke alarm"])
    freq, on, off, group, pause = {"alarm clock": (2000, 0.08, 0.07, 4, 0.5), "reversing": (1000, 0.5, 0.5, 1, 0.0),
                                   "microwave": (1050, 0.6, 0.3, 3, 2.0), "smoke alarm": (3100, 0.5, 0.5, 3, 1.5)}[kind]
    x = np.zeros(n)
    beep = np.sin(2 * np.pi * freq * np.arange(int(on * sr)) / sr)
    beep *= np.minimum(1, np.minimum(np.arange(len(beep)), np.arange(len(beep))[::-1]) / (0.003 * sr))
    t = 0.1
    while t < seconds:
        for _ in range(group):
            place(x, beep, int(t * sr))
            t += on + off
        t += pause
    caption = {"alarm clock": "an alarm clock beeping", "reversing": "a truck beeping while reversing",
               "microwave": "a microwave oven beeping", "smoke alarm": "a smoke alarm beeping"}[kind]
    return x, caption, "beep", ["beep", kind]


def telephone(rng: random.Random, sr: int, seconds: float) -> Result:
    n = int(sr * seconds)
    t = np.arange(n) / sr
    if rng.random() < 0.5:
        x = (np.sin(2 * np.pi * 440 * t) + np.sin(2 * np.pi * 480 * t)) * ((t % 6.0) < 2.0)
        return x, "a telephone ringing", "telephone", ["telephone", "ring tone"]
    bell = tone(rng.uniform(1500, 2200), n, sr, (1.0, 0.0, 0.5, 0.0, 0.3)) * (0.6 + 0.4 * np.sign(np.sin(2 * np.pi * 18 * t)))
    x = bell * (((t % 4.0) < 0.4) | (((t % 4.0) > 0.6) & ((t % 4.0) < 1.0)))
    return x, "an old telephone bell ringing", "telephone", ["telephone", "bell"]


MATERIALS = {"wood": (150, 2500), "gravel": (800, 9000), "snow": (100, 3000), "concrete": (400, 7000),
             "grass": (500, 6000)}


def footsteps(rng: random.Random, sr: int, seconds: float) -> Result:
    g = _np(rng)
    n = int(sr * seconds)
    material = rng.choice(sorted(MATERIALS))
    running = rng.random() < 0.3
    rate = rng.uniform(2.6, 3.4) if running else rng.uniform(1.6, 2.1)
    lo, hi = MATERIALS[material]
    x = np.zeros(n)
    t = rng.uniform(0.05, 0.3)
    while t < seconds - 0.2:
        m = int(0.12 * sr)
        burst = shape_noise(g.standard_normal(m), sr, band(lo, hi)) * decay(m, sr, 0.02 if material != "snow" else 0.05)
        if material == "gravel":
            burst *= g.random(m) < 0.3  # crunch: many tiny grains
        place(x, burst, int(t * sr), rng.uniform(0.6, 1.0))
        place(x, burst[::-1][-m // 2:] * 0.5, int((t + 0.05) * sr))  # heel then toe
        t += 1 / rate * rng.uniform(0.93, 1.07)
    verb = "running" if running else "walking"
    where = {"wood": "on a wooden floor", "gravel": "on gravel", "snow": "in snow", "concrete": "on concrete",
             "grass": "on grass"}[material]
    return x, f"footsteps of someone {verb} {where}", "footsteps", ["footsteps", material, verb]


def dog_bark(rng: random.Random, sr: int, seconds: float) -> Result:
    g = _np(rng)
    n = int(sr * seconds)
    big = rng.random() < 0.4
    x = np.zeros(n)
    t = rng.uniform(0.1, 0.5)
    while t < seconds - 0.4:
        for _ in range(rng.randint(1, 3)):
            m = int(rng.uniform(0.12, 0.22) * sr)
            f0 = (rng.uniform(220, 350) if big else rng.uniform(450, 750)) * np.linspace(1.15, 0.8, m)
            voiced = np.tanh(3 * tone(f0, m, sr, tuple(1 / (k + 1) for k in range(10))))
            noisy = voiced + 0.4 * g.standard_normal(m)
            formant = shape_noise(noisy, sr, band(500 if big else 800, 2500 if big else 3500, 1.5))
            env = np.minimum(1, np.arange(m) / (0.01 * sr)) * decay(m, sr, 0.07)
            place(x, formant * env, int(t * sr))
            t += m / sr + rng.uniform(0.12, 0.25)
        t += rng.uniform(0.5, 1.5)
    return x, "a large dog barking" if big else "a dog barking", "dog", ["dog", "bark"]


def thunder(rng: random.Random, sr: int, seconds: float) -> Result:
    g = _np(rng)
    n = int(sr * seconds)
    rumble = shape_noise(g.standard_normal(n), sr, band(20, 200, 1.5)) * (0.4 + smooth_random(g, n, sr, 3.0))
    at = int(rng.uniform(0.1, 0.3) * n)
    env = np.zeros(n)
    env[at:] = decay(n - at, sr, rng.uniform(1.5, 3.0))
    crack = shape_noise(g.standard_normal(n), sr, band(200, 5000)) * np.concatenate(
        [np.zeros(at), decay(n - at, sr, 0.15)])
    return rumble * env * 3 + crack, "a thunderclap and rolling thunder", "thunder", ["thunder", "storm"]


def waves(rng: random.Random, sr: int, seconds: float) -> Result:
    g = _np(rng)
    n = int(sr * seconds)
    t = np.arange(n) / sr
    swell = (0.5 - 0.5 * np.cos(2 * np.pi * t / rng.uniform(5, 9))) ** 2
    x = moving_band(g.standard_normal(n), sr, 100 + 300 * swell, 800 + 5000 * swell)
    return x * (0.15 + swell), "ocean waves crashing on the shore", "waves", ["waves", "sea"]


def fire(rng: random.Random, sr: int, seconds: float) -> Result:
    g = _np(rng)
    n = int(sr * seconds)
    roar = shape_noise(g.standard_normal(n), sr, band(60, 600)) * 0.4
    pops = np.zeros(n)
    for at in g.integers(0, n, int(seconds * rng.uniform(8, 25))):
        m = int(g.uniform(0.002, 0.01) * sr)
        place(pops, g.standard_normal(m) * decay(m, sr, 0.002), int(at), float(g.uniform(0.3, 1.5)))
    return roar / (np.abs(roar).max() + 1e-9) * 0.5 + pops, "a fire crackling", "fire", ["fire", "crackling"]


def clock(rng: random.Random, sr: int, seconds: float) -> Result:
    g = _np(rng)
    n = int(sr * seconds)
    x = np.zeros(n)
    m = int(0.02 * sr)
    ticks = [shape_noise(g.standard_normal(m), sr, band(f, f * 2.5)) * decay(m, sr, 0.003) for f in (2500, 1800)]
    period = rng.choice([0.5, 1.0])
    for k, t in enumerate(np.arange(0.1, seconds, period)):
        place(x, ticks[k % 2], int(t * sr))
    return x, "a clock ticking", "clock", ["clock", "ticking"]


def bell(rng: random.Random, sr: int, seconds: float) -> Result:
    n = int(sr * seconds)
    kind = rng.choice(["church", "doorbell", "chimes"])
    x = np.zeros(n)
    def strike(f0: float, length: float, partials=(0.5, 1.0, 1.19, 1.5, 2.0, 2.5, 3.0)) -> np.ndarray:
        m = int(length * sr)
        return sum(np.sin(2 * np.pi * f0 * p * np.arange(m) / sr) * decay(m, sr, length / (1 + i) ) / (1 + i)
                   for i, p in enumerate(partials))
    if kind == "church":
        f0 = rng.uniform(220, 440)
        for t in np.arange(0.1, seconds, rng.uniform(1.5, 2.5)):
            place(x, strike(f0, 4.0), int(t * sr))
        return x, "a church bell ringing", "bell", ["bell", "church"]
    if kind == "doorbell":
        f = rng.uniform(600, 800)
        place(x, strike(f * 1.26, 1.5, (1.0, 2.0, 3.0)), int(0.1 * sr))
        place(x, strike(f, 2.5, (1.0, 2.0, 3.0)), int(0.7 * sr))
        return x, "a doorbell ding-dong", "bell", ["bell", "doorbell"]
    for t in sorted(rng.uniform(0, seconds - 0.5) for _ in range(int(seconds * 4))):
        place(x, strike(rng.uniform(1500, 4000), 1.5, (1.0, 2.76, 5.4)), int(t * sr), rng.uniform(0.3, 1))
    return x, "wind chimes tinkling", "bell", ["bell", "wind chimes"]


def knock(rng: random.Random, sr: int, seconds: float) -> Result:
    g = _np(rng)
    n = int(sr * seconds)
    x = np.zeros(n)
    t = rng.uniform(0.2, 0.6)
    for _ in range(rng.randint(1, 3)):
        for _ in range(rng.randint(2, 4)):
            m = int(0.15 * sr)
            body = np.sin(2 * np.pi * rng.uniform(110, 180) * np.arange(m) / sr) * decay(m, sr, 0.03)
            hit = shape_noise(g.standard_normal(m), sr, band(300, 3000)) * decay(m, sr, 0.006)
            place(x, body + 0.6 * hit, int(t * sr))
            t += rng.uniform(0.15, 0.25)
        t += rng.uniform(0.8, 1.5)
        if t > seconds - 1:
            break
    return x, "someone knocking on a wooden door", "knock", ["knock", "door"]


def birds(rng: random.Random, sr: int, seconds: float) -> Result:
    n = int(sr * seconds)
    x = np.zeros(n)
    for _ in range(rng.randint(1, 3)):  # one to three birds, each with its own song
        base, span, length = rng.uniform(2500, 5000), rng.uniform(-1500, 1500), rng.uniform(0.04, 0.12)
        t = rng.uniform(0, 1)
        while t < seconds - 0.5:
            for _ in range(rng.randint(2, 6)):
                m = int(length * sr)
                f = base + span * np.linspace(0, 1, m) ** rng.choice([0.5, 1, 2])
                place(x, tone(f, m, sr) * np.hanning(m), int(t * sr), rng.uniform(0.4, 1))
                t += length + rng.uniform(0.02, 0.08)
            t += rng.uniform(0.5, 2.5)
    return x, "birds chirping", "bird", ["bird", "chirping"]


def insects(rng: random.Random, sr: int, seconds: float) -> Result:
    n = int(sr * seconds)
    t = np.arange(n) / sr
    if rng.random() < 0.5:
        carrier = np.sin(2 * np.pi * rng.uniform(4000, 5500) * t)
        pulses = (np.sin(2 * np.pi * rng.uniform(25, 40) * t) > 0) * ((t % rng.uniform(0.5, 1.0)) < 0.25)
        return carrier * pulses, "crickets chirping at night", "insect", ["insect", "crickets"]
    f = rng.uniform(180, 260) * (1 + 0.04 * np.sin(2 * np.pi * rng.uniform(3, 8) * t))
    saw = tone(f, n, sr, tuple(1 / (k + 1) for k in range(15)))
    amp = 0.4 + 0.6 * smooth_random(_np(rng), n, sr, 1.5)
    return saw * amp, "a fly buzzing", "insect", ["insect", "buzzing"]


def applause(rng: random.Random, sr: int, seconds: float) -> Result:
    g = _np(rng)
    n = int(sr * seconds)
    crowd = rng.random() < 0.6
    x = np.zeros(n)
    rate = rng.uniform(150, 400) if crowd else rng.uniform(2.5, 4)
    m = int(0.015 * sr)
    clap = shape_noise(g.standard_normal(m), sr, band(800, 4000)) * decay(m, sr, 0.003)
    times = g.uniform(0, seconds, int(seconds * rate)) if crowd else np.arange(0.1, seconds, 1 / rate)
    for at in times:
        place(x, clap, int(at * sr), float(g.uniform(0.3, 1.0)))
    return x, ("a crowd applauding" if crowd else "a person clapping"), "applause", ["applause", "clapping"]


def drips(rng: random.Random, sr: int, seconds: float) -> Result:
    g = _np(rng)
    n = int(sr * seconds)
    x = np.zeros(n)
    t = 0.1
    while t < seconds - 0.1:
        m = int(0.03 * sr)
        f = rng.uniform(800, 1500) * np.linspace(1, rng.uniform(1.5, 2.5), m)
        place(x, tone(f, m, sr) * decay(m, sr, 0.008), int(t * sr), rng.uniform(0.5, 1))
        t += float(g.exponential(rng.uniform(0.3, 0.8))) + 0.05
    return x, "water dripping", "water", ["water", "dripping"]


def horn(rng: random.Random, sr: int, seconds: float) -> Result:
    n = int(sr * seconds)
    t = np.arange(n) / sr
    f1 = rng.uniform(380, 450)
    x = np.tanh(3 * (tone(f1, n, sr, (1, .5, .3, .2)) + tone(f1 * 1.25, n, sr, (1, .5, .3, .2))))
    pattern = np.zeros(n, dtype=bool)
    at = 0.1
    for _ in range(rng.randint(1, 3)):
        length = rng.uniform(0.2, 0.9)
        pattern |= (t >= at) & (t < at + length)
        at += length + rng.uniform(0.15, 0.4)
    return x * pattern, "a car horn honking", "horn", ["horn", "car"]


def heartbeat(rng: random.Random, sr: int, seconds: float) -> Result:
    n = int(sr * seconds)
    x = np.zeros(n)
    period = 60 / rng.uniform(55, 100)
    m = int(0.12 * sr)
    thump = np.sin(2 * np.pi * 50 * np.arange(m) / sr) * decay(m, sr, 0.03)
    for t in np.arange(0.1, seconds - 0.3, period):
        place(x, thump, int(t * sr))
        place(x, thump * 0.7, int((t + 0.28 * period) * sr))
    return x, "a heartbeat", "heartbeat", ["heartbeat"]


def typing(rng: random.Random, sr: int, seconds: float) -> Result:
    g = _np(rng)
    n = int(sr * seconds)
    x = np.zeros(n)
    t = 0.1
    m = int(0.02 * sr)
    while t < seconds - 0.1:
        click = shape_noise(g.standard_normal(m), sr, band(1500, 8000)) * decay(m, sr, 0.003)
        place(x, click, int(t * sr), rng.uniform(0.5, 1))
        t += rng.uniform(0.08, 0.25) + (rng.uniform(0.3, 0.8) if rng.random() < 0.08 else 0)
    return x, "typing on a computer keyboard", "typing", ["typing", "keyboard"]


def whistle(rng: random.Random, sr: int, seconds: float) -> Result:
    g = _np(rng)
    n = int(sr * seconds)
    t = np.arange(n) / sr
    if rng.random() < 0.5:
        x = np.zeros(n)
        at = 0.2
        for _ in range(rng.randint(1, 3)):
            m = int(rng.uniform(0.3, 1.0) * sr)
            trill = 1 + 0.5 * np.sin(2 * np.pi * rng.uniform(25, 40) * np.arange(m) / sr)
            place(x, tone(rng.uniform(2800, 3500), m, sr) * trill * np.minimum(1, np.arange(m)[::-1] / (0.02 * sr)), int(at * sr))
            at += m / sr + 0.3
        return x + 0.05 * g.standard_normal(n), "a referee blowing a whistle", "whistle", ["whistle", "referee"]
    rise = np.minimum(1, t / (0.6 * seconds))
    x = tone(1500 + 1000 * rise, n, sr) * rise + 0.1 * shape_noise(g.standard_normal(n), sr, band(1500, 4000)) * rise
    return x, "a kettle whistling", "whistle", ["whistle", "kettle"]


GENERATORS: dict[str, Callable[[random.Random, int, float], Result]] = {
    f.__name__: f for f in [siren, engine, wind, rain, beeps, telephone, footsteps, dog_bark, thunder, waves, fire,
                            clock, bell, knock, birds, insects, applause, drips, horn, heartbeat, typing, whistle]
}


def synthesise(name: str, rng: random.Random, sample_rate: int, seconds: float) -> Result:
    """One clip of generator `name`, float32 peak-normalised to -3 dBFS (loudness comes later)."""
    audio, caption, sound_class, labels = GENERATORS[name](rng, sample_rate, seconds)
    audio = np.asarray(audio, dtype=np.float64)
    fade = min(len(audio) // 4, int(0.01 * sample_rate))
    if fade:
        audio[:fade] *= np.linspace(0, 1, fade)
        audio[-fade:] *= np.linspace(1, 0, fade)
    peak = np.abs(audio).max()
    if peak > 0:
        audio = audio / peak * 10 ** (-3 / 20)
    return audio.astype(np.float32), caption, sound_class, labels
