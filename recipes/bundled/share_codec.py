"""Ship one codec for both bundled models: the sound model's export carries a copy of the same
codec the music model has; check the two are byte-identical, then point the sound model at the
music model's folder (config extra["codec"]) and drop the copy.

    python recipes/bundled/share_codec.py wavecraft/models/bundled/sound wavecraft/models/bundled/music
"""
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path


def digest(folder: Path) -> str:
    return hashlib.sha256((folder / "model.safetensors").read_bytes() + (folder / "config.json").read_bytes()).hexdigest()


def main() -> None:
    model, owner = Path(sys.argv[1]), Path(sys.argv[2])
    if digest(model / "codec") != digest(owner / "codec"):
        sys.exit(f"{model}/codec differs from {owner}/codec: the models do not share a codec, nothing changed")
    config_path = model / "config.json"
    config = json.loads(config_path.read_text())
    config.setdefault("extra", {})["codec"] = os.path.relpath(owner / "codec", model)
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    shutil.rmtree(model / "codec")
    print(f"{model} now uses {config['extra']['codec']}")


if __name__ == "__main__":
    main()
