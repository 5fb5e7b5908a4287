"""Captions built from rendered attributes, and sound captions cleaned from file paths."""
import random

import pytest

from wavecraft.data import gm
from wavecraft.data.music_captions import derived_moods, music_metadata, tempo_word
from wavecraft.data.sound_labels import label_path, normalise


@pytest.mark.parametrize("bpm, word", [(50, "very slow"), (72, "slow"), (100, "moderate"), (128, "fast"), (170, "very fast")])
def test_tempo_words(bpm, word):
    assert tempo_word(bpm) == word


def test_moods_follow_mode_tempo_and_dynamics():
    assert derived_moods("major", 140, "loud") == ["happy", "bright", "powerful"]
    assert derived_moods("minor", 66, "soft") == ["sad", "melancholic", "gentle"]
    assert derived_moods("minor", 140, "moderate") == ["tense", "dark"]


ATTRS = {"style": "funk", "bpm": 104, "meter": "4/4", "tonic_pc": 4, "mode": "minor", "dynamics": "loud",
         "instruments": [36, 7, 61], "lead_program": 61, "has_drums": True, "style_moods": ["groovy"]}


def test_music_metadata_states_the_rendered_facts():
    for seed in range(8):  # every template
        meta = music_metadata(ATTRS, random.Random(seed))
        text = meta["description"].lower()
        assert "104" in text and "e minor" in text and "funk groove" in text
        assert "brass section" in text and "slap bass" in text and "clavinet" in text and "drums" in text
    assert meta["bpm"] == 104 and meta["key"] == "E minor" and meta["mode"] == "minor" and meta["tonic"] == "E"
    assert meta["instrument_family"] == "brass"  # the lead's family
    assert meta["instruments"][0] == "brass section" and meta["instruments"][-1] == "drums"
    assert meta["moods"] == ["wistful", "moody", "powerful", "groovy"]  # minor, moderate (104 < 112), loud
    assert meta["genre"] == "funk" and meta["tempo"] == "moderate"


def test_corpus_metadata_names_the_ensemble():
    attrs = dict(ATTRS, style="Baroque chorale", group="chorale", ensemble="string quartet", instruments=[40, 40, 41, 42],
                 lead_program=40, has_drums=False, bpm=72, mode="major", tonic_pc=7, dynamics="soft", style_moods=[],
                 title="Chorale", composer="J. S. Bach")
    meta = music_metadata(attrs, random.Random(0))
    assert "string quartet (violin, viola and cello)" in meta["description"]
    assert meta["genre"] == "classical" and meta["artist"] == "J. S. Bach" and meta["key"] == "G major"
    solo = music_metadata(dict(attrs, ensemble="solo", instruments=[110], lead_program=110), random.Random(0))
    assert "solo fiddle" in solo["description"] and solo["instrument_family"] == "strings"
    choir = music_metadata(dict(attrs, ensemble="choir", instruments=[52] * 4, lead_program=52), random.Random(0))
    assert "sung by a choir" in choir["description"] and choir["instrument_family"] == "voice"


def test_key_spelling():
    assert gm.key_name(1, "major") == "Db major" and gm.key_name(1, "minor") == "C# minor"
    assert gm.key_name(10, "minor") == "Bb minor" and gm.key_name(6, "major") == "F# major"


@pytest.mark.parametrize("source, path, caption, cls", [
    ("0ad", "audio/actor/fauna/animal/horse_death1.ogg", "a horse dying", "horse"),
    ("0ad", "audio/ambient/weather/rain_11.ogg", "rain", "rain"),
    ("0ad", "audio/actor/fauna/death/Animal_death_generic_10.ogg", "an animal dying", "wild animal"),
    ("0ad", "audio/actor/singlesteps/fs_gravel7.ogg", "a footstep on gravel", "footsteps"),
    ("0ad", "audio/voice/latin/civ/civ_female_hello.ogg", "a woman saying a short phrase in Latin", "speech"),
    ("0ad", "audio/voice/global/civ_dog_bark.ogg", "a dog barking", "dog"),
    ("ufoai", "sound/weapons/bullet-shotgun-3x.ogg", "a shotgun blast", "gunshot"),
    ("ufoai", "sound/doors/door3-close.ogg", "a door closing", "door"),
    ("ufoai", "sound/civilians/civfemdeath01a.ogg", "a woman screaming", "scream"),
    ("minetest", "/usr/share/x/sounds/default_snow_footstep.3.ogg", "a footstep on snow", "footsteps"),
    ("minetest", "/usr/share/x/sounds/doors_steel_door_open.ogg", "a steel door opening", "door"),
    ("sonic_pi", "/usr/share/sonic-pi/samples/bd_808.flac", "a kick drum hit", "drum"),
    ("sonic_pi", "/usr/share/sonic-pi/samples/misc_crow.flac", "a crow cawing", "bird"),
])
def test_paths_become_phrases(source, path, caption, cls):
    label = label_path(source, path)
    assert label is not None and (label.caption, label.sound_class) == (caption, cls)


def test_unknown_paths_are_left_out():
    assert label_path("0ad", "audio/attack/fire/sz_3.ogg") is None
    assert label_path("0ad", "audio/interface/alarm/alarmvictory.ogg") is None


def test_normalise_strips_take_numbers():
    assert normalise("A/B/Horse_Death1.ogg") == "a/b/horse_death"
    assert normalise("x/default_dug_node.2.ogg") == "x/default_dug_node"
    assert normalise("x/swordhit_11a.ogg") == "x/swordhit"
