import random

import pytest
import torch

from wavecraft.errors import CheckpointError
from wavecraft.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state


def test_roundtrip_is_weights_only_and_restores_rng(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    state = {"model": model.state_dict(), "optim": opt.state_dict(), "step": 7, "rng": rng_state()}
    path = save_checkpoint(state, tmp_path / "ck.pt")
    a = (torch.rand(3), random.random())
    # weights_only=True is what load_checkpoint uses; do it by hand too to prove the file is plain.
    raw = torch.load(path, weights_only=True)
    assert raw["step"] == 7
    loaded = load_checkpoint(path)
    set_rng_state(loaded["rng"])
    b = (torch.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and a[1] == b[1]
    opt2 = torch.optim.AdamW(torch.nn.Linear(3, 2).parameters())
    opt2.load_state_dict(loaded["optim"])
    assert opt2.state_dict()["state"][0]["step"] == 1


def test_atomic_write_keeps_previous_on_failure(tmp_path):
    path = save_checkpoint({"x": 1}, tmp_path / "ck.pt")

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        save_checkpoint({"x": Unpicklable()}, path)
    assert load_checkpoint(path)["x"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]  # no temp files left behind


def test_errors_are_clear(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="cannot load training checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"a": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a wavecraft training checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
