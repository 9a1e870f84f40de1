"""Collectives of the distributed evaluation (issue 28): agreement on errors, object gathers,
and the gradient sum that makes N processes train a probe head like one process.

Every helper is the identity (or a no-op) in one process, so the protocols keep one code
path. The process's place in the job comes from `core.distributed.current()`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.distributed as dist

from dcbench.core.distributed import DistInfo, current
from dcbench.core.errors import RankFailed, UserError


def comm_device(info: DistInfo | None = None) -> torch.device:
    """Where collective tensors must live: this rank's GPU under NCCL, else the CPU."""
    info = info or current()
    if info.active and dist.get_backend() == "nccl":
        return torch.device("cuda", info.local_rank)
    return torch.device("cpu")


def gather_objects(obj: Any, info: DistInfo | None = None) -> list[Any]:
    """Every rank's picklable `obj`, in rank order, on every rank ([obj] in one process)."""
    info = info or current()
    if not info.active:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def check_all(error: BaseException | None, info: DistInfo | None = None) -> None:
    """A phase boundary: every rank says whether it failed. A rank that failed re-raises its
    own error; the others raise the first failed rank's one-line message (a UserError when
    that was one, so the CLI prints `dcbench: error:` and exits 2 on every rank), instead of
    waiting for a peer that will never reach the next collective."""
    info = info or current()
    if not info.active:
        if error is not None:
            raise error
        return
    mine = None if error is None else (isinstance(error, UserError), str(error))
    reports = gather_objects(mine, info)
    if error is not None:
        raise error
    for rank, report in enumerate(reports):
        if report is not None:
            is_user, message = report
            if is_user:
                raise UserError(message)
            raise RankFailed(f"rank {rank} of {info.world_size} failed: {message}")


def sum_over_ranks(values: list[float], info: DistInfo | None = None) -> list[float]:
    """Element-wise sums of a few float64 counters over ranks (the values in one process)."""
    info = info or current()
    if not info.active:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=comm_device(info))
    dist.all_reduce(t)
    return t.cpu().tolist()


def sync_gradients(params: Iterable[torch.nn.Parameter], rows: int, loss: float,
                        info: DistInfo | None = None) -> tuple[int, float]:
    """After each rank's backward of its mean loss over its `rows` rows of one global batch:
    every gradient becomes sum_r rows_r * grad_r / sum_r rows_r, the gradient of the mean loss
    over the whole global batch (what one process computes), in one all-reduce (gradients,
    row count and loss packed together). Returns (global rows, global mean loss); with 0
    global rows the caller skips the step, as one process never sees such a batch.
    A rank with no rows passes zero gradients (`None` grads count as zeros)."""
    info = info or current()
    params = [p for p in params if p.requires_grad]
    if not info.active:
        return rows, loss
    grads = [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
             for p in params]
    device = comm_device(info)
    head = torch.tensor([float(rows), float(loss) * rows], dtype=torch.float64, device=device)
    flat = torch.cat([g.double().to(device) * rows for g in grads]) if grads \
        else head.new_zeros(0)
    packed = torch.cat([head, flat])
    dist.all_reduce(packed)
    total = int(round(float(packed[0])))
    if total == 0:
        return 0, 0.0
    offset = 2
    for p, g in zip(params, grads, strict=True):
        n = g.numel()
        p.grad = (packed[offset:offset + n] / total).to(p.device, p.dtype).view_as(p).clone()
        offset += n
    return total, float(packed[1]) / total


GradGroup = tuple[Sequence[torch.nn.Parameter], int, torch.Tensor | None]  # params, rows, loss


def sync_gradient_groups(groups: Sequence[GradGroup], buffers: Sequence[torch.Tensor] = (),
                         info: DistInfo | None = None
                         ) -> tuple[list[int], list[torch.Tensor | None]]:
    """`sync_gradients` for many independent heads at once (issue 28 follow-up: one
    collective per probe step, not one per head). Each group is (parameters, this rank's
    rows, this rank's mean loss or None); `buffers` get rank 0's values (DDP's
    `broadcast_buffers`, folded into the same sum: the other ranks add zeros).

    One float64 all-reduce of [rows..., rows x loss..., rows x gradients..., buffers...]
    and one host read of the 2 x groups counters; each group's gradients become the
    global batch's (exactly the arithmetic of `sync_gradients`). Returns per group (global
    rows, global mean loss as a 0-dim float64 tensor, None with no global row); a group
    with 0 global rows keeps its gradients (the caller skips its step). In one process:
    (rows, the loss as given, detached and float64) with no collective and no host read.
    """
    info = info or current()
    if not info.active:
        return ([rows for _, rows, _ in groups],
                [None if loss is None else loss.detach().double() for _, _, loss in groups])
    device = comm_device(info)
    params = [[p for p in ps if p.requires_grad] for ps, _, _ in groups]
    rows = torch.tensor([float(r) for _, r, _ in groups], dtype=torch.float64)
    parts = [rows.to(device, non_blocking=True)]
    parts += [(loss.detach().double().to(device) * r).reshape(1) if loss is not None
              else torch.zeros(1, dtype=torch.float64, device=device)
              for _, r, loss in groups]
    for ps, (_, r, _) in zip(params, groups, strict=True):
        parts += [(p.grad.double().to(device) * r).reshape(-1) if p.grad is not None
                  else torch.zeros(p.numel(), dtype=torch.float64, device=device) for p in ps]
    parts += [buf.double().to(device).reshape(-1) if info.is_main
              else torch.zeros(buf.numel(), dtype=torch.float64, device=device)
              for buf in buffers]
    packed = torch.cat(parts)
    dist.all_reduce(packed)
    n = len(groups)
    counters = packed[:2 * n].tolist()  # the one host read of the step
    totals = [int(round(c)) for c in counters[:n]]
    offset = 2 * n
    for ps, total in zip(params, totals, strict=True):
        for p in ps:
            if total:
                grad = packed[offset:offset + p.numel()] / total
                p.grad = grad.to(p.device, p.dtype).view_as(p).clone()
            offset += p.numel()
    for buf in buffers:
        buf.copy_(packed[offset:offset + buf.numel()].view_as(buf))
        offset += buf.numel()
    means = [torch.tensor(counters[n + i] / total, dtype=torch.float64) if total else None
             for i, total in enumerate(totals)]
    return totals, means


def broadcast_buffers(module: torch.nn.Module, info: DistInfo | None = None) -> None:
    """Rank 0's buffers (BatchNorm running statistics) on every rank, as DDP does."""
    info = info or current()
    if info.active:
        for buf in module.buffers():
            dist.broadcast(buf, 0)


__all__ = ["broadcast_buffers", "check_all", "comm_device", "gather_objects", "sum_over_ranks",
           "sync_gradient_groups", "sync_gradients"]
