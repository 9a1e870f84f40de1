"""Sharded passes with 2 gloo CPU processes: each rank reads a contiguous shard of the exact
index list (no padding), and `gather_in_order` rebuilds what one process computes, in
dataset order, with a rank that has no rows and undecodable files reported once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dcbench.core.distributed import DistInfo
from dcbench.data.loader import DecodeReport
from dcbench.engine.sharded import gather_in_order, shard_of, shard_positions, share_report


class Items:
    """A dataset of 7 items whose item i is (value i, label i % 3, index i)."""

    samples = [(f"img{i}.png", i % 3) for i in range(7)]

    def __len__(self) -> int:
        return 7

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        return torch.full((2,), float(i)), i % 3, i


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    info = DistInfo(rank=rank, world_size=2)
    part = shard_of(Items(), info)
    items = [part[j] for j in range(len(part))]
    kept = [it for it in items if it[2] != 4]  # item 4 does not decode
    report = DecodeReport()
    report.add([it[2] for it in items if it[2] == 4], Items())
    share_report(report, info)
    feats = torch.stack([it[0] for it in kept])
    labels = torch.tensor([it[1] for it in kept])
    idx = torch.tensor([it[2] for it in kept])
    # reversed rows: the gather sorts by dataset index, not by arrival
    merged, order = gather_in_order({"f": feats.flip(0), "y": labels.flip(0)}, idx.flip(0),
                                    info)
    # a rank without rows (rank 1 here) passes empty tensors of any shape
    empty = gather_in_order({"f": feats if rank == 0 else torch.zeros(0)},
                            idx if rank == 0 else torch.zeros(0, dtype=torch.long), info)
    torch.save({"seen": [it[2] for it in items], "f": merged["f"], "y": merged["y"],
                "idx": order, "files": report.files, "empty": empty},
               Path(out_dir) / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_two_processes_read_each_item_once_and_gather_in_order(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    a, b = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert a["seen"] == [0, 1, 2, 3] and b["seen"] == [4, 5, 6]  # contiguous, no padding
    want = [0, 1, 2, 3, 5, 6]
    for out in (a, b):
        assert out["idx"].tolist() == want
        assert out["f"][:, 0].tolist() == [float(i) for i in want]
        assert out["y"].tolist() == [i % 3 for i in want]
        assert out["files"] == ["img4.png"]  # reported once, on every rank
        feats, idx = out["empty"]
        assert idx.tolist() == [0, 1, 2, 3] and feats["f"].shape == (4, 2)


def test_one_process_is_the_identity() -> None:
    items = Items()
    assert shard_of(items) is items
    np.testing.assert_array_equal(shard_positions([5, 3, 9]), [5, 3, 9])
    assert shard_positions(np.arange(7), DistInfo(1, 2)).tolist() == [4, 5, 6]
    feats, idx = {"f": torch.ones(2, 1)}, torch.tensor([1, 0])
    assert gather_in_order(feats, idx) == (feats, idx)  # untouched, not even sorted
