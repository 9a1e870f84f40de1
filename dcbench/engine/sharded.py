"""Sharded inference passes for `torchrun ... -m dcbench eval` (issue 28): each rank reads a
contiguous shard of the exact index list (no sampler padding, so every image is read exactly
once), and the per-image results come back to every rank in dataset order.

In one process every function is the identity, so callers keep one code path:
`shard_of(dataset)` is the dataset itself and `gather_in_order` returns its input.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Subset

from dcbench.core.dist_eval import comm_device, gather_objects
from dcbench.core.distributed import DistInfo, current, gather_varying, shard
from dcbench.data.loader import DecodeReport


def shard_positions(positions: Sequence[int] | np.ndarray, info: DistInfo | None = None
                    ) -> np.ndarray:
    """This rank's contiguous slice of `positions` (all of them in one process)."""
    info = info or current()
    positions = np.asarray(positions, dtype=np.int64)
    start, stop = shard(len(positions), info)
    return positions[start:stop]


def shard_of(dataset: Any, info: DistInfo | None = None) -> Any:
    """This rank's contiguous shard of `dataset` (a `Subset` whose items keep their dataset
    index, the third item of every dcbench dataset); the dataset itself in one process."""
    info = info or current()
    if not info.active:
        return dataset
    return Subset(dataset, shard_positions(np.arange(len(dataset)), info).tolist())


def gather_in_order(tensors: dict[str, torch.Tensor], indices: torch.Tensor,
                    info: DistInfo | None = None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Every rank's rows (any number per rank, none included), on every rank, sorted by
    `indices` (dataset positions): the tensors one process would have built over the whole
    dataset. A rank without rows may pass empty tensors of any shape: the row shape and
    dtype of a rank that has rows are used."""
    info = info or current()
    if not info.active:
        return tensors, indices
    shapes = gather_objects({k: (tuple(v.shape[1:]), str(v.dtype).removeprefix("torch."))
                             for k, v in tensors.items() if len(v)}, info)
    device = comm_device(info)
    out = {}
    all_indices = gather_varying(indices.long().to(device), info).cpu()
    order = torch.argsort(all_indices, stable=True)
    for key, value in tensors.items():
        known = next((s[key] for s in shapes if key in s), None)
        if not len(value) and known is not None:
            value = torch.zeros((0, *known[0]), dtype=getattr(torch, known[1]))
        out[key] = gather_varying(value.contiguous().to(device), info).cpu()[order]
    return out, all_indices[order]


def sum_arrays(array: np.ndarray, info: DistInfo | None = None) -> np.ndarray:
    """The element-wise sum of `array` over ranks, same dtype (per-image results that each
    rank filled for its own images, zeros elsewhere); `array` itself in one process."""
    info = info or current()
    if not info.active:
        return array
    t = torch.from_numpy(np.ascontiguousarray(array)).to(comm_device(info))
    dist.all_reduce(t)
    return t.cpu().numpy()


def share_report(report: DecodeReport | None, info: DistInfo | None = None) -> None:
    """Add every rank's undecodable files to `report` on every rank (listed once: the report
    keys files by dataset index). A collective: every rank calls it at the same point."""
    info = info or current()
    if report is None or not info.active:
        return
    for entries in gather_objects(report.entries, info):
        report.merge(entries)


__all__ = ["gather_in_order", "shard_of", "shard_positions", "share_report",
           "sum_arrays"]
