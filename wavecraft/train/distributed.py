"""Data-parallel helpers: set-up from torchrun's environment, model wrapping, gradient sync.

`torchrun --nproc_per_node=N -m wavecraft.train ...` sets RANK / WORLD_SIZE / LOCAL_RANK /
MASTER_ADDR / MASTER_PORT; `init_distributed` reads them (gloo on CPU, NCCL on GPU). Without them
everything here degrades to single-process no-ops, so solvers call these unconditionally.
"""
from __future__ import annotations

import datetime
import os
from typing import Iterable

import torch
import torch.distributed as dist
from torch import nn


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


def init_distributed(device: str = "auto") -> torch.device:
    """Join the process group torchrun describes (if any) and return this process's device."""
    want_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if want_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu" if device == "auto" else device)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not is_distributed():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
    return dev


def cleanup() -> None:
    if is_distributed():
        dist.destroy_process_group()


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def broadcast_module(module: nn.Module, src: int = 0) -> None:
    """Make every rank start from rank `src`'s parameters and buffers."""
    if not is_distributed():
        return
    with torch.no_grad():
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src)


def average_gradients(params: Iterable[nn.Parameter]) -> None:
    """All-reduce-mean the gradients of `params` in one flat buffer per dtype.

    Used by the codec solver instead of the DDP wrapper: the gradient balancer backpropagates
    through the model output in a custom way and the discriminator steps separately, which DDP's
    hooks do not follow. Parameters without a gradient get zeros so all ranks reduce the same set.
    """
    if not is_distributed():
        return
    params = [p for p in params if p.requires_grad]
    by_dtype: dict[torch.dtype, list[nn.Parameter]] = {}
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        by_dtype.setdefault(p.grad.dtype, []).append(p)
    n = world_size()
    for group in by_dtype.values():
        flat = torch.cat([p.grad.reshape(-1) for p in group])
        dist.all_reduce(flat)
        flat /= n
        offset = 0
        for p in group:
            numel = p.grad.numel()
            p.grad.copy_(flat[offset:offset + numel].view_as(p.grad))
            offset += numel


def average_buffers(module: nn.Module) -> None:
    """All-reduce-mean floating buffers (e.g. RVQ EMA codebook statistics) so ranks stay in sync."""
    if not is_distributed():
        return
    buffers = [b for b in module.buffers() if b.is_floating_point()]
    if not buffers:
        return
    flat = torch.cat([b.reshape(-1).float() for b in buffers])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for b in buffers:
        b.copy_(flat[offset:offset + b.numel()].view_as(b).to(b.dtype))
        offset += b.numel()


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    if not is_distributed():
        return value
    value = value.detach().clone()
    dist.all_reduce(value)
    return value / world_size()


def wrap_model(model: nn.Module, device: torch.device, strategy: str = "ddp",
               wrap_modules: set[type] | None = None) -> nn.Module:
    """Wrap for data parallelism: 'ddp' (DistributedDataParallel), 'fsdp' (fully sharded, for models
    that do not fit one device; `wrap_modules` are sharded one unit each, e.g. transformer layers),
    or 'none'. Single-process runs return the model unchanged."""
    if not is_distributed() or strategy == "none":
        return model
    if strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        # find_unused_parameters: a batch whose rows all dropped an attribute leaves that
        # conditioner's parameters without gradient.
        return DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False, find_unused_parameters=True)
    if strategy == "fsdp":
        from torch.distributed.fsdp import FullyShardedDataParallel
        from torch.distributed.fsdp.wrap import ModuleWrapPolicy

        policy = ModuleWrapPolicy(wrap_modules) if wrap_modules else None
        return FullyShardedDataParallel(model, device_id=device if device.type == "cuda" else None,
                                        auto_wrap_policy=policy, use_orig_params=True)
    raise ValueError(f"unknown distributed strategy {strategy!r}; use 'ddp', 'fsdp' or 'none'")


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") and isinstance(model.module, nn.Module) else model


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The unsharded state dict on CPU (gathers FSDP shards; every rank must call it)."""
    try:
        from torch.distributed.fsdp import FullyShardedDataParallel, FullStateDictConfig, StateDictType
    except ImportError:  # pragma: no cover - very old torch
        FullyShardedDataParallel = None  # type: ignore[assignment]
    if FullyShardedDataParallel is not None and isinstance(model, FullyShardedDataParallel):
        cfg = FullStateDictConfig(offload_to_cpu=True, rank0_only=False)
        with FullyShardedDataParallel.state_dict_type(model, StateDictType.FULL_STATE_DICT, cfg):
            return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return {k: v.detach().cpu().clone() for k, v in unwrap(model).state_dict().items()}
