"""Resolving names through the Hugging Face cache, offline, with actionable errors."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from wavecraft import hub
from wavecraft.errors import CheckpointError


def _snapshot(cache: Path, repo: str, rev: str, files: dict[str, str], ref: bool = True) -> Path:
    folder = cache / ("models--" + repo.replace("/", "--"))
    snap = folder / "snapshots" / rev
    snap.mkdir(parents=True)
    for name, text in files.items():
        (snap / name).write_text(text)
    if ref:
        (folder / "refs").mkdir(exist_ok=True)
        (folder / "refs" / "main").write_text(rev)
    return snap


def test_cache_location_follows_environment(monkeypatch, tmp_path) -> None:
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert hub.hf_cache_dir() == tmp_path / ".cache" / "huggingface" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert hub.hf_cache_dir() == tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "direct"))
    assert hub.hf_cache_dir() == tmp_path / "direct"


def test_resolve_repo_id_to_the_main_snapshot(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    old = _snapshot(tmp_path, "facebook/encodec_32khz", "aaa", {"config.json": "{}"})
    new = _snapshot(tmp_path, "facebook/encodec_32khz", "bbb", {"config.json": "{}"}, ref=False)
    os.utime(new, (time.time() + 10, time.time() + 10))
    assert hub.resolve("facebook/encodec_32khz") == old  # refs/main wins over the newest folder
    (tmp_path / "models--facebook--encodec_32khz" / "refs" / "main").unlink()
    assert hub.resolve("facebook/encodec_32khz") == new
    assert hub.display_name("facebook/encodec_32khz", new) == "facebook/encodec_32khz"
    assert hub.display_name(str(new), new) == "facebook/encodec_32khz"  # a snapshot path keeps its repo id
    assert hub.display_name(str(tmp_path), tmp_path) == tmp_path.name


def test_missing_or_incomplete_repo_says_what_to_do(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(CheckpointError) as err:
        hub.resolve("facebook/musicgen-small", what="model")
    message = str(err.value)
    assert "not in the Hugging Face cache" in message and "never downloads" in message
    assert "huggingface-cli download facebook/musicgen-small" in message
    assert str(tmp_path) in message and "models--facebook--musicgen-small" in message
    _snapshot(tmp_path, "facebook/musicgen-small", "abc", {"config.json": "{}"})
    with pytest.raises(CheckpointError, match=r"lacks state_dict.bin or model.safetensors \(incomplete download\?\)"):
        hub.resolve("facebook/musicgen-small", required=["config.json", "state_dict.bin|model.safetensors"])


def test_local_paths_win_and_bad_names_fail(tmp_path) -> None:
    (tmp_path / "facebook").mkdir()
    (tmp_path / "facebook" / "x").mkdir()
    assert hub.resolve(tmp_path / "facebook" / "x") == tmp_path / "facebook" / "x"
    with pytest.raises(CheckpointError, match="no such file or folder"):
        hub.resolve(str(tmp_path / "nothing"))
    assert not hub.is_repo_id("../etc") and not hub.is_repo_id("a/b/c") and hub.is_repo_id("facebook/encodec_24khz")
