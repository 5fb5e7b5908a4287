"""Bundled models: short names -> folders in wavecraft's native format, shipped inside the package.

They are trained by the project's own pipeline (recipes/bundled/build.sh) and documented by the
MODEL_CARD.md in each folder. `resolve_bundled` returns None for names that are not bundled, so
loaders fall through to paths and Hugging Face repo ids.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import CheckpointError

# name -> folder (absolute, or relative to this package's directory)
BUNDLED: dict[str, str] = {
    "music": "bundled/music",  # MusicGen-style text (+ melody) to music (recipes/bundled/music.yaml)
    "sound": "bundled/sound",  # AudioGen-style text to sound effects (recipes/bundled/sound.yaml)
    # 16 kHz mono, 4 x 1024 codebooks at 50 Hz (recipes/bundled/codec16k.yaml): the music model's own
    # codec folder, so the weights ship once for both names.
    "codec": "bundled/music/codec",
}
# The model `wavecraft generate` / `wavecraft demo` use when --model is not given (None: no
# generation model bundled; `generate` then needs --model and `demo` round-trips the codec).
DEFAULT_MODEL: str | None = "music"
# The codec `wavecraft compress` uses when --model is not given.
DEFAULT_CODEC: str | None = "codec"


def resolve_bundled(name: str) -> Path | None:
    folder = BUNDLED.get(name)
    if folder is None:
        return None
    path = Path(folder)
    path = path if path.is_absolute() else Path(__file__).resolve().parent / path
    if not (path / "config.json").is_file():
        raise CheckpointError(f"the bundled model {name!r} is missing from this installation (expected {path}); "
                              "reinstall wavecraft, or rebuild it with recipes/bundled/build.sh")
    return path


def bundled_names() -> list[str]:
    return sorted(BUNDLED)
