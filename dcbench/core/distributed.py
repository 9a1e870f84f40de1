"""torch.distributed plumbing for `torchrun ... -m dcbench train`: init, gather, broadcast.

Under torchrun the process group is initialised from the environment (gloo on CPU, nccl on
GPU) with a timeout (`DCBENCH_DIST_TIMEOUT` seconds, default 1800), so a rank whose peer died
fails instead of waiting forever. Without it every helper degrades to the single-process
case, so the training loop has one code path. `current()` is the process's `DistInfo` once
`init_from_env` ran (what `dcbench eval`'s protocols consult instead of a new argument).
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: rank, world size, and whether a process group is active."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        """True under torchrun with more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 clusters, logs and writes files."""
        return self.rank == 0


_CURRENT = DistInfo()


def current() -> DistInfo:
    """This process's place in the running job (one process unless `init_from_env` made a
    group): the sharded evaluation passes read it, so protocol signatures stay unchanged."""
    return _CURRENT


def group_timeout() -> datetime.timedelta:
    """How long a collective may wait for a peer (`DCBENCH_DIST_TIMEOUT` s, default 1800)."""
    return datetime.timedelta(seconds=float(os.environ.get("DCBENCH_DIST_TIMEOUT", "1800")))


def init_from_env(device: str) -> DistInfo:
    """Initialise the process group when launched by torchrun (WORLD_SIZE > 1)."""
    global _CURRENT
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend, timeout=group_timeout())
    _CURRENT = DistInfo(rank=rank, world_size=world, local_rank=local)
    return _CURRENT


def shutdown(info: DistInfo) -> None:
    """Tear the process group down (end of run)."""
    global _CURRENT
    if info.active and dist.is_initialized():
        dist.destroy_process_group()
    _CURRENT = DistInfo()


def shard(n: int, info: DistInfo) -> tuple[int, int]:
    """This rank's contiguous [start, stop) slice of n items (sizes differ by at most 1)."""
    per, extra = divmod(n, info.world_size)
    start = info.rank * per + min(info.rank, extra)
    return start, start + per + (1 if info.rank < extra else 0)


def gather_rows(
    local: torch.Tensor, n_total: int, info: DistInfo, device: torch.device
) -> torch.Tensor:
    """Concatenate every rank's rows (in rank order) onto all ranks; shards come from `shard`."""
    if not info.active:
        return local
    sizes = [b - a for a, b in (shard(n_total, DistInfo(r, info.world_size))
                                for r in range(info.world_size))]
    width = max(sizes)
    padded = torch.zeros((width, *local.shape[1:]), dtype=local.dtype, device=device)
    padded[: len(local)] = local.to(device)
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    return torch.cat([p[:s] for p, s in zip(parts, sizes, strict=True)]).cpu()


def gather_varying(local: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Concatenate every rank's rows (rank order, any sizes) onto all ranks, on `local`'s
    device (sizes first, then one padded all-gather)."""
    if not info.active:
        return local
    size = torch.tensor([len(local)], dtype=torch.int64, device=local.device)
    sizes = [torch.empty_like(size) for _ in range(info.world_size)]
    dist.all_gather(sizes, size)
    counts = [int(s.item()) for s in sizes]
    padded = local.new_zeros((max(counts), *local.shape[1:]))
    padded[: len(local)] = local
    parts = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(parts, padded)
    return torch.cat([p[:c] for p, c in zip(parts, counts, strict=True)])


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """The element-wise sum of `t` over ranks (a new tensor; `t` itself in one process)."""
    if not info.active:
        return t
    out = t.clone()
    dist.all_reduce(out)
    return out


def broadcast_tensor(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Rank 0's tensor on every rank (same shape and dtype everywhere; must be contiguous,
    or the collective would send the storage in memory order)."""
    if info.active:
        assert t.is_contiguous(), "broadcast_tensor needs a contiguous tensor"
        dist.broadcast(t, 0)
    return t


def broadcast_array(array: np.ndarray | None, info: DistInfo, device: torch.device) -> np.ndarray:
    """Rank 0's int64 array on every rank (others pass None)."""
    if not info.active:
        assert array is not None
        return array
    length = torch.tensor([len(array) if info.is_main else 0], dtype=torch.int64, device=device)
    dist.broadcast(length, 0)
    buf = (torch.from_numpy(np.asarray(array, dtype=np.int64)).to(device) if info.is_main
           else torch.empty(int(length.item()), dtype=torch.int64, device=device))
    dist.broadcast(buf, 0)
    return buf.cpu().numpy()


def average_gradients(params: list[torch.nn.Parameter], info: DistInfo) -> None:
    """All-reduce and average the gradients of `params` (what DDP does, made explicit so the
    top layer can be swapped every epoch and SGT can touch only some rows)."""
    if not info.active:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= info.world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def sync_buffers(module: torch.nn.Module, info: DistInfo) -> None:
    """Broadcast rank 0's buffers (BatchNorm running stats), as DDP does before a forward."""
    if not info.active:
        return
    for buf in module.buffers():
        dist.broadcast(buf, 0)


def reduce_mean(value: float, info: DistInfo, device: torch.device) -> float:
    """Mean of a scalar over ranks."""
    if not info.active:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item()) / info.world_size


def barrier(info: DistInfo) -> None:
    """Wait for every rank."""
    if info.active:
        dist.barrier()
