"""The distributed-eval collectives with 2 gloo CPU processes, against one-process references:
the row-weighted gradient sum equals the gradient of the whole global batch (uneven slices,
one rank empty), errors are agreed at phase boundaries, counters are summed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from dcbench.core.dist_eval import (
    check_all,
    gather_objects,
    sum_over_ranks,
    sync_gradients,
)
from dcbench.core.distributed import DistInfo
from dcbench.core.errors import UserError

# global batches of 7 rows sliced [0, 5) / [5, 7), then one of 1 row: rank 1 gets none
SLICES = [((0, 5), (5, 7)), ((0, 1), (1, 1))]


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(8, 6, generator=g), torch.randint(0, 3, (8,), generator=g)


def _head() -> nn.Linear:
    torch.manual_seed(1)
    return nn.Linear(6, 3)


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    info = DistInfo(rank=rank, world_size=2)
    x, y = _data()
    out: dict[str, object] = {}
    for step, slices in enumerate(SLICES):
        offset = 0 if step == 0 else 7
        start, stop = slices[rank]
        head = _head()
        loss = None
        if stop > start:
            loss = nn.functional.cross_entropy(head(x[offset + start:offset + stop]),
                                               y[offset + start:offset + stop])
            loss.backward()
        rows, mean = sync_gradients(head.parameters(), stop - start,
                                         0.0 if loss is None else float(loss.detach()), info)
        out[f"rows{step}"], out[f"loss{step}"] = rows, mean
        out[f"grad{step}"] = [p.grad.clone() for p in head.parameters()]
    out["sums"] = sum_over_ranks([1.0, rank + 0.5], info)
    out["objects"] = gather_objects({"rank": rank}, info)
    try:
        check_all(UserError("bad data on rank 1") if rank == 1 else None, info)
    except UserError as err:
        out["error"] = str(err)
    try:
        check_all(RuntimeError("boom") if rank == 1 else None, info)
    except RuntimeError as err:
        out["runtime"] = str(err)
    torch.save(out, Path(out_dir) / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_two_processes_average_like_one_global_batch(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    x, y = _data()
    for rank in (0, 1):
        out = torch.load(tmp_path / f"rank{rank}.pt")
        for step, (rows, sl) in enumerate(((7, slice(0, 7)), (1, slice(7, 8)))):
            head = _head()  # the reference: one process, the whole global batch
            loss = nn.functional.cross_entropy(head(x[sl]), y[sl])
            loss.backward()
            assert out[f"rows{step}"] == rows
            assert out[f"loss{step}"] == pytest.approx(float(loss.detach()), rel=1e-6)
            for got, want in zip(out[f"grad{step}"], [p.grad for p in head.parameters()],
                                 strict=True):
                torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
        assert out["sums"] == [2.0, 2.0]
        assert out["objects"] == [{"rank": 0}, {"rank": 1}]
        assert out["error"] == "bad data on rank 1"  # the same one line on every rank
        assert ("rank 1 of 2 failed: boom" in out["runtime"]) if rank == 0 \
            else out["runtime"] == "boom"


def test_one_process_is_the_identity() -> None:
    head = _head()
    x, y = _data()
    nn.functional.cross_entropy(head(x), y).backward()
    before = [p.grad.clone() for p in head.parameters()]
    assert sync_gradients(head.parameters(), 8, 1.5) == (8, 1.5)
    assert all(torch.equal(a, p.grad) for a, p in zip(before, head.parameters(), strict=True))
    assert sum_over_ranks([1.0, 2.0]) == [1.0, 2.0] and gather_objects(3) == [3]
    check_all(None)
    with pytest.raises(UserError, match="mine"):
        check_all(UserError("mine"))
