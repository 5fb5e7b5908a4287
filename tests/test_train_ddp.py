"""Two CPU processes (gloo) train the tiny codec and LM together and must stay bit-identical."""
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from wavecraft.train.toydata import make_toy_dataset


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, manifest: str, out: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from wavecraft.train import distributed, make_solver
    from wavecraft.train.export import export_run

    common = [f"data.manifest={manifest}", "run.steps=3", "data.batch_size=2"]
    codec = make_solver("codec", "recipes/tiny_codec.yaml", [*common, f"run.out_dir={out}/codec", "model.q_dropout=true"])
    initial = {k: v.clone() for k, v in codec.model.state_dict().items()}
    codec.run()
    torch.save({"initial": initial, "final": codec.model.state_dict()}, f"{out}/codec_rank{rank}.pt")
    if rank == 0:
        export_run(f"{out}/codec", f"{out}/codec_export")
    distributed.barrier()
    lm = make_solver("lm", "recipes/tiny_lm.yaml", [
        *common, f"run.out_dir={out}/lm", f"codec={out}/codec_export", "run.strategy=ddp",
        "model.conditioners={genre: {type: lut, vocab: [test tone, ambient, electronic], output_dim: 32}}",
        "model.fuse={genre: cross}", "attribute_dropout={}",
    ])
    lm.run()
    torch.save({"final": lm.module.state_dict(), "batch_index": next(iter(lm.batches()))["index"]},
               f"{out}/lm_rank{rank}.pt")
    distributed.cleanup()


@pytest.mark.slow
def test_two_processes_stay_in_sync(tmp_path):
    manifest = make_toy_dataset(tmp_path / "toy", n_files=6, sample_rate=8000, duration=1.0)
    mp.start_processes(_worker, args=(_free_port(), str(manifest), str(tmp_path)), nprocs=2, start_method="spawn")
    for kind in ("codec", "lm"):
        r0 = torch.load(tmp_path / f"{kind}_rank0.pt", weights_only=True)
        r1 = torch.load(tmp_path / f"{kind}_rank1.pt", weights_only=True)
        for key, value in r0["final"].items():
            assert torch.equal(value, r1["final"][key]), f"{kind}: {key} differs between ranks"
        if kind == "codec":
            changed = [k for k, v in r0["final"].items() if not torch.equal(v, r0["initial"][k])]
            assert len(changed) > 10  # it did train
        else:
            # The ranks read different items of each global batch.
            assert not set(r0["batch_index"].tolist()) & set(r1["batch_index"].tolist())
    # Only rank 0 writes the run folder; the checkpoint resumes in a single process.
    from wavecraft.train.checkpoint import load_checkpoint

    state = load_checkpoint(tmp_path / "lm" / "checkpoint.pt")
    assert state["step"] == 3 and len(state["rng"]) == 2
