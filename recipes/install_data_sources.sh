#!/usr/bin/env bash
# Install everything `wavecraft data build-music` and `build-sounds` read, from package registries
# only (Debian + PyPI). Usage:
#   bash recipes/install_data_sources.sh            # all sources (0ad-data is a 1.4 GB download)
#   bash recipes/install_data_sources.sh --no-0ad   # skip 0ad-data (the sound set loses ~840 clips)
#   PYTHON=/path/to/python bash recipes/install_data_sources.sh   # default: .venv/bin/python
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-.venv/bin/python}"
WITH_0AD=1
for arg in "$@"; do
  case "$arg" in
    --no-0ad) WITH_0AD=0 ;;
    *) echo "unknown option $arg (use --no-0ad)" >&2; exit 2 ;;
  esac
done

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# Soundfonts (MIT / CC-BY-SA drum kits), sound-effect packages and the speech synthesiser.
APT_PACKAGES=(
  fluid-soundfont-gm            # FluidR3_GM.sf2, MIT
  musescore-general-soundfont   # MuseScore_General.sf3, MIT (parts CC0/PD)
  fluidr3mono-gm-soundfont      # FluidR3Mono_GM.sf3, MIT
  avldrums.lv2-soundfont        # Black Pearl / Red Zeppelin acoustic kits, CC-BY-SA-3.0
  sonic-pi-samples              # CC0 drum hits and loops
  ufoai-sound                   # GPL-2+ (some CC-BY-3.0) game sounds
  minetest-data                 # CC-BY-SA-3.0 game sounds
  espeak-ng                     # speech synthesiser (GPL-3; its output is unrestricted)
)
if [ "$WITH_0AD" = 1 ]; then
  APT_PACKAGES+=(0ad-data)      # CC-BY-SA-3.0, ~1,000 labelled clips; 1.4 GB download, 3.2 GB installed
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends "${APT_PACKAGES[@]}"

# music21 brings its corpus (~15,000 works). tinysoundfont declares pyaudio, needed only for live
# playback, so it is installed without dependencies.
"$PYTHON" -m pip install --disable-pip-version-check "music21>=9"
"$PYTHON" -m pip install --disable-pip-version-check --no-deps "tinysoundfont>=0.3"
echo "data sources installed; build with: wavecraft data build-music OUT --hours H, wavecraft data build-sounds OUT"
