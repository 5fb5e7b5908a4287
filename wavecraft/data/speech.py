"""Synthetic speech clips from espeak-ng, for the sound set's "someone speaking" classes.

espeak-ng is a formant synthesiser: intelligible but robotic, so captions say "a synthesized
voice" rather than pretend to be a recording. The sentences are our own, a few per language; the
voice variant (male/female/whisper), speed and pitch are drawn per clip.
"""
from __future__ import annotations

import io
import random
import shutil
import subprocess

import numpy as np

from .sources import SourceMissingError

SENTENCES = {
    "English": ("en-us", [
        "The train to the city leaves in ten minutes.", "Please close the door when you leave the room.",
        "It is going to rain later this afternoon.", "Can you hear the birds singing outside?",
        "Welcome everyone, and thank you for coming tonight.", "Turn left at the next corner, then go straight on.",
        "The meeting has been moved to Thursday morning.", "I think we should wait a little longer.",
        "Attention please, the museum will close in fifteen minutes.", "Let me tell you a short story about the sea.",
    ]),
    "British English": ("en-gb", [
        "The kettle is on, would you like a cup of tea?", "Mind the gap between the train and the platform.",
        "We walked along the river until it got dark.", "The shop on the corner opens at nine.",
    ]),
    "French": ("fr-fr", [
        "Bonjour à tous, bienvenue dans notre ville.", "Le train part dans dix minutes.",
        "Il va pleuvoir cet après-midi.", "Fermez la porte, s'il vous plaît.",
    ]),
    "German": ("de", [
        "Guten Morgen, wie geht es Ihnen heute?", "Der Zug fährt in zehn Minuten ab.",
        "Morgen wird es den ganzen Tag regnen.", "Bitte schließen Sie die Tür hinter sich.",
    ]),
    "Spanish": ("es", [
        "Buenos días, bienvenidos a todos.", "El tren sale en diez minutos.",
        "Esta tarde va a llover mucho.", "Por favor, cierre la puerta al salir.",
    ]),
    "Italian": ("it", [
        "Buongiorno a tutti e benvenuti.", "Il treno parte tra dieci minuti.",
        "Oggi pomeriggio pioverà.", "Per favore, chiudi la porta.",
    ]),
}
VOICES = {"male": ["m1", "m2", "m3", "m4", "m5", "m7"], "female": ["f1", "f2", "f3", "f4", "f5"],
          "whisper": ["whisper", "whisperf"]}


def espeak_binary() -> str:
    path = shutil.which("espeak-ng")
    if path is None:
        raise SourceMissingError("speech clips need espeak-ng: run `apt-get install -y espeak-ng`, or pass --speech 0")
    return path


def speak(rng: random.Random) -> tuple[np.ndarray, int, str, list[str], dict]:
    """One synthetic utterance: (mono float32 audio, its sample rate, caption, labels, settings)."""
    import soundfile as sf

    language = rng.choice(sorted(SENTENCES))
    code, sentences = SENTENCES[language]
    count = rng.choice([1, 1, 2])
    text = " ".join(rng.sample(sentences, count))
    kind = rng.choices(["male", "female", "whisper"], weights=[5, 5, 1])[0]
    variant = rng.choice(VOICES[kind])
    speed, pitch = rng.randint(130, 190), rng.randint(30, 70)
    cmd = [espeak_binary(), "-v", f"{code}+{variant}", "-s", str(speed), "-p", str(pitch), "--stdout", text]
    wav = subprocess.run(cmd, capture_output=True, check=True, timeout=60).stdout
    audio, sr = sf.read(io.BytesIO(wav), dtype="float32")
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    fast = " quickly" if speed >= 175 else (" slowly" if speed <= 140 else "")
    if kind == "whisper":
        caption = f"a synthesized voice whispering in {language}"
    else:
        caption = f"a synthesized {kind} voice speaking {language}{fast}"
    settings = {"language": language, "voice": f"{code}+{variant}", "speed_wpm": speed, "pitch": pitch, "text": text}
    return audio, sr, caption, ["speech", kind, language.lower()], settings
