"""General MIDI facts the music builder needs: program names, instrument families, drum notes.

Names are the plain words a person would type in a prompt ("electric piano", not "E.Piano 1"),
and families are coarser than GM's own 16 groups because the model cards measure whether the
generated lead instrument belongs to the requested family: "ensemble" in GM mixes strings with
choirs, "pipe" and "reed" are both woodwinds to a listener.
"""
from __future__ import annotations

# (friendly name, family) for GM programs 0..127.
PROGRAMS: list[tuple[str, str]] = [
    ("grand piano", "piano"), ("bright piano", "piano"), ("electric grand piano", "piano"),
    ("honky-tonk piano", "piano"), ("electric piano", "electric piano"), ("electric piano", "electric piano"),
    ("harpsichord", "keyboard"), ("clavinet", "keyboard"),
    ("celesta", "mallets"), ("glockenspiel", "mallets"), ("music box", "mallets"), ("vibraphone", "mallets"),
    ("marimba", "mallets"), ("xylophone", "mallets"), ("tubular bells", "mallets"), ("dulcimer", "plucked"),
    ("organ", "organ"), ("percussive organ", "organ"), ("rock organ", "organ"), ("church organ", "organ"),
    ("reed organ", "organ"), ("accordion", "accordion"), ("harmonica", "accordion"), ("bandoneon", "accordion"),
    ("nylon-string guitar", "guitar"), ("acoustic guitar", "guitar"), ("jazz guitar", "guitar"),
    ("clean electric guitar", "guitar"), ("muted electric guitar", "guitar"), ("overdriven guitar", "guitar"),
    ("distorted guitar", "guitar"), ("guitar harmonics", "guitar"),
    ("upright bass", "bass"), ("electric bass", "bass"), ("picked electric bass", "bass"),
    ("fretless bass", "bass"), ("slap bass", "bass"), ("slap bass", "bass"), ("synth bass", "bass"),
    ("synth bass", "bass"),
    ("violin", "strings"), ("viola", "strings"), ("cello", "strings"), ("double bass", "strings"),
    ("tremolo strings", "strings"), ("pizzicato strings", "strings"), ("harp", "plucked"), ("timpani", "percussion"),
    ("string ensemble", "strings"), ("slow strings", "strings"), ("synth strings", "strings"),
    ("synth strings", "strings"), ("choir", "voice"), ("vocal oohs", "voice"), ("synth voice", "voice"),
    ("orchestra hit", "brass"),
    ("trumpet", "brass"), ("trombone", "brass"), ("tuba", "brass"), ("muted trumpet", "brass"),
    ("french horn", "brass"), ("brass section", "brass"), ("synth brass", "brass"), ("synth brass", "brass"),
    ("soprano saxophone", "saxophone"), ("alto saxophone", "saxophone"), ("tenor saxophone", "saxophone"),
    ("baritone saxophone", "saxophone"), ("oboe", "woodwind"), ("english horn", "woodwind"),
    ("bassoon", "woodwind"), ("clarinet", "woodwind"),
    ("piccolo", "woodwind"), ("flute", "woodwind"), ("recorder", "woodwind"), ("pan flute", "woodwind"),
    ("blown bottle", "woodwind"), ("shakuhachi", "woodwind"), ("whistle", "woodwind"), ("ocarina", "woodwind"),
    ("square-wave synth lead", "synth"), ("sawtooth synth lead", "synth"), ("calliope synth lead", "synth"),
    ("chiff synth lead", "synth"), ("charang synth lead", "synth"), ("synth voice lead", "synth"),
    ("fifths synth lead", "synth"), ("bass and lead synth", "synth"),
    ("new age synth pad", "synth pad"), ("warm synth pad", "synth pad"), ("polysynth pad", "synth pad"),
    ("choir synth pad", "synth pad"), ("bowed synth pad", "synth pad"), ("metallic synth pad", "synth pad"),
    ("halo synth pad", "synth pad"), ("sweep synth pad", "synth pad"),
    ("rain synth effect", "synth"), ("soundtrack synth", "synth"), ("crystal synth", "synth"),
    ("atmosphere synth", "synth"), ("brightness synth", "synth"), ("goblins synth", "synth"),
    ("echo synth", "synth"), ("sci-fi synth", "synth"),
    ("sitar", "plucked"), ("banjo", "plucked"), ("shamisen", "plucked"), ("koto", "plucked"),
    ("kalimba", "mallets"), ("bagpipe", "woodwind"), ("fiddle", "strings"), ("shanai", "woodwind"),
    ("tinkle bell", "mallets"), ("agogo", "percussion"), ("steel drums", "mallets"), ("woodblock", "percussion"),
    ("taiko drum", "percussion"), ("melodic tom", "percussion"), ("synth drum", "percussion"),
    ("reverse cymbal", "percussion"),
    ("guitar fret noise", "effects"), ("breath noise", "effects"), ("seashore", "effects"),
    ("bird tweet", "effects"), ("telephone ring", "effects"), ("helicopter", "effects"),
    ("applause", "effects"), ("gunshot", "effects"),
]
assert len(PROGRAMS) == 128

FAMILIES = sorted({family for _, family in PROGRAMS})

# GM drum kits (bank 128 preset numbers) present in all three Debian GM soundfonts.
DRUM_KITS = {0: "standard", 8: "room", 16: "power", 24: "electronic", 25: "808", 32: "jazz", 40: "brush",
             48: "orchestral"}

# GM percussion key map (channel 10), the notes our patterns use.
KICK, KICK2, SIDESTICK, SNARE, CLAP, ESNARE = 36, 35, 37, 38, 39, 40
CLOSED_HAT, PEDAL_HAT, OPEN_HAT = 42, 44, 46
LOW_TOM, MID_TOM, HIGH_TOM, FLOOR_TOM = 45, 47, 50, 41
CRASH, RIDE, RIDE_BELL, TAMBOURINE, COWBELL = 49, 51, 53, 54, 56
HI_BONGO, LO_BONGO, MUTE_CONGA, OPEN_CONGA, LOW_CONGA = 60, 61, 62, 63, 64
CABASA, MARACAS, CLAVES, HI_WOODBLOCK = 69, 70, 75, 76

# Letters used in drum pattern tables (music_patterns.py) -> GM drum note.
DRUM_LETTERS = {
    "k": KICK, "s": SNARE, "r": SIDESTICK, "c": CLAP, "h": CLOSED_HAT, "p": PEDAL_HAT, "o": OPEN_HAT,
    "R": RIDE, "b": RIDE_BELL, "C": CRASH, "t": TAMBOURINE, "w": COWBELL, "l": CLAVES, "m": MARACAS,
    "g": HI_BONGO, "G": LO_BONGO, "q": MUTE_CONGA, "Q": OPEN_CONGA, "L": LOW_CONGA, "e": ESNARE,
    "1": HIGH_TOM, "2": MID_TOM, "3": LOW_TOM, "4": FLOOR_TOM,
}

PITCH_NAMES_SHARP = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
# Conventional spelling of key tonics (fewest accidentals in the key signature).
MAJOR_TONICS = ["C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
MINOR_TONICS = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B"]


def program_name(program: int) -> str:
    return PROGRAMS[program][0]


def program_family(program: int) -> str:
    return PROGRAMS[program][1]


def key_name(tonic_pc: int, mode: str) -> str:
    """'E minor' from a pitch class (0 = C) and 'major'/'minor'."""
    names = MINOR_TONICS if mode == "minor" else MAJOR_TONICS
    return f"{names[tonic_pc % 12]} {mode}"


def tonic_name(tonic_pc: int, mode: str) -> str:
    return key_name(tonic_pc, mode).split()[0]
