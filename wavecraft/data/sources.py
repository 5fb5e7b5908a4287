"""Where the offline training material comes from: packages, install paths and licences.

Everything the data builders read is installed from a package registry (Debian or PyPI), never
downloaded at run time. This table is the single record of what each source is, how to install
it, where its files land and under which licence; `DATA_CARD.md` and the build's
`build_info.json` are written from it. A missing source is a user-fixable error that names the
exact apt/pip command.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import os
from pathlib import Path

from ..errors import WavecraftError


class SourceMissingError(WavecraftError):
    """A data source package is not installed."""


@dataclasses.dataclass(frozen=True)
class Source:
    name: str  # our short name, used in sidecars (`source`) and on the command line
    kind: str  # "soundfont", "drumkit", "score_corpus", "sfx", "speech", "renderer"
    package: str  # the Debian or PyPI package that provides it
    installer: str  # "apt" or "pip"
    licence: str  # SPDX-like identifier of the material's licence
    paths: tuple[str, ...] = ()  # candidate files/folders (first existing wins); empty for pip modules
    module: str = ""  # for pip sources: the importable module
    note: str = ""

    @property
    def install_command(self) -> str:
        if self.installer == "file":
            return f"check the path {self.package}"
        if self.installer == "apt":
            return f"apt-get install -y {self.package}"
        if self.package == "tinysoundfont":  # it declares pyaudio, which only live playback needs
            return "pip install --no-deps tinysoundfont"
        return f"pip install {self.package}"

    def locate(self) -> Path | None:
        """The installed file/folder, or None when the package is not installed."""
        if self.module:
            spec = importlib.util.find_spec(self.module)
            if spec is None or not spec.submodule_search_locations:
                return None
            return Path(list(spec.submodule_search_locations)[0])
        for candidate in self.paths:
            path = Path(os.path.expandvars(candidate))
            if path.exists():
                return path.resolve()
        return None

    def require(self) -> Path:
        path = self.locate()
        if path is None:
            raise SourceMissingError(
                f"data source {self.name!r} is not installed: run `{self.install_command}` "
                f"(or `bash recipes/install_data_sources.sh`), or leave it out with --sources"
            )
        return path


SF2 = "/usr/share/sounds/sf2"
SF3 = "/usr/share/sounds/sf3"

SOURCES: dict[str, Source] = {
    s.name: s
    for s in [
        # --- music: renderer, soundfonts, scores -------------------------------------------
        Source("tinysoundfont", "renderer", "tinysoundfont", "pip", "MIT", module="tinysoundfont"),
        Source("music21", "score_corpus", "music21", "pip", "BSD-3-Clause (code); corpus per work",
               module="music21",
               note="corpus encodings are public domain or licensed for use; some are non-commercial "
                    "(music21/corpus/license.txt)"),
        Source("fluidr3_gm", "soundfont", "fluid-soundfont-gm", "apt", "MIT",
               (f"{SF2}/FluidR3_GM.sf2",)),
        Source("musescore_general", "soundfont", "musescore-general-soundfont", "apt", "MIT (parts CC0/PD)",
               (f"{SF3}/MuseScore_General.sf3", f"{SF3}/MuseScore_General_Full.sf3")),
        Source("fluidr3_mono", "soundfont", "fluidr3mono-gm-soundfont", "apt", "MIT",
               (f"{SF3}/FluidR3Mono_GM.sf3", "/usr/share/fluidr3mono-gm-soundfont/FluidR3Mono_GM.sf3")),
        Source("avl_black_pearl", "drumkit", "avldrums.lv2-soundfont", "apt", "CC-BY-SA-3.0",
               (f"{SF2}/Black_Pearl_4_LV2.sf2", "/usr/lib/lv2/avldrums.lv2/Black_Pearl_4_LV2.sf2")),
        Source("avl_red_zeppelin", "drumkit", "avldrums.lv2-soundfont", "apt", "CC-BY-SA-3.0",
               (f"{SF2}/Red_Zeppelin_4_LV2.sf2", "/usr/lib/lv2/avldrums.lv2/Red_Zeppelin_4_LV2.sf2")),
        # TimGM6mb ships inside pretty-midi; GPL-2, so it is opt-in (not in the default set).
        Source("timgm6mb", "soundfont", "pretty-midi", "pip", "GPL-2.0",
               ("$TIMGM6MB",), note="opt-in: pass --soundfonts timgm6mb; GPL-2 sample data"),
        # --- sound effects -----------------------------------------------------------------
        Source("0ad", "sfx", "0ad-data", "apt", "CC-BY-SA-3.0",
               ("/usr/share/games/0ad/mods/public/public.zip",),
               note="Wildfire Games; audio/ folder of the public mod (1.4 GB package)"),
        Source("ufoai", "sfx", "ufoai-sound", "apt", "GPL-2.0+ (some CC-BY-3.0)",
               ("/usr/share/games/ufoai/base/0snd.pk3",)),
        Source("minetest", "sfx", "minetest-data", "apt", "CC-BY-SA-3.0 (door sounds CC-BY-3.0/CC0)",
               ("/usr/share/games/minetest",)),
        Source("sonic_pi", "sfx", "sonic-pi-samples", "apt", "CC0-1.0",
               ("/usr/share/sonic-pi/samples", "/usr/lib/sonic-pi/etc/samples")),
        Source("espeak_ng", "speech", "espeak-ng", "apt", "GPL-3.0+ (synthesiser; output unrestricted)",
               ("/usr/bin/espeak-ng",)),
    ]
}

DEFAULT_SOUNDFONTS = ("fluidr3_gm", "musescore_general", "fluidr3_mono")
DEFAULT_DRUMKITS = ("avl_black_pearl", "avl_red_zeppelin")
DEFAULT_SFX = ("0ad", "ufoai", "minetest", "sonic_pi")


def _timgm6mb_path() -> str:
    spec = importlib.util.find_spec("pretty_midi")
    if spec is None or not spec.submodule_search_locations:
        return "/nonexistent"
    return str(Path(list(spec.submodule_search_locations)[0]) / "TimGM6mb.sf2")


def get_source(name: str) -> Source:
    if name.lower().endswith((".sf2", ".sf3")):  # a user's own soundfont file, given by path
        return Source(Path(name).stem, "soundfont", name, "file", "user-supplied (check its licence)", (name,))
    if name not in SOURCES:
        raise WavecraftError(f"unknown data source {name!r}; known sources: {', '.join(SOURCES)}")
    source = SOURCES[name]
    if name == "timgm6mb":
        source = dataclasses.replace(source, paths=(_timgm6mb_path(),))
    return source


def available(names: tuple[str, ...] | list[str]) -> dict[str, Path]:
    """The installed subset of `names` with their paths (missing ones silently left out)."""
    found = {}
    for name in names:
        path = get_source(name).locate()
        if path is not None:
            found[name] = path
    return found


def require_all(names: tuple[str, ...] | list[str]) -> dict[str, Path]:
    """Paths of all `names`; one error naming every missing package and its install command."""
    missing = [get_source(n) for n in names if get_source(n).locate() is None]
    if missing:
        commands = "; ".join(f"`{s.install_command}` for {s.name}" for s in missing)
        raise SourceMissingError(
            f"missing data source(s): run {commands} (or `bash recipes/install_data_sources.sh`), "
            "or choose other sources with --sources/--soundfonts"
        )
    return {n: get_source(n).require() for n in names}


def licence_table(names: list[str]) -> list[dict[str, str]]:
    """Rows for build_info.json / the data card."""
    rows = []
    for name in names:
        s = get_source(name)
        path = s.locate()
        rows.append({"source": name, "package": s.package, "installer": s.installer,
                     "licence": s.licence, "path": str(path) if path else "", "note": s.note})
    return rows
