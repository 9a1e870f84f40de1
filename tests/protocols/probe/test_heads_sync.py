"""`ProbeSet.train_step` syncs once per step, not once per head (issue 28 follow-up).

- One process: no host read at all. The heads, features and labels live on the `meta`
  device, where any read of a value (`.item()`, `float()`, a device mask's `nonzero`)
  raises, so a step that would wait for a GPU fails here.
- Two gloo processes: one all-reduce and at most one host read per step (counted by
  wrapping `torch.distributed` and the Tensor read methods); the linear heads (masked or
  not, a head with no global row) end where one process on the global batches leaves them
  (to 1e-6); the BN heads (batch statistics per rank, as under DDP) hold rank 0's running
  statistics on both ranks, those of a plain BatchNorm fed rank 0's rows.
- Evaluation: one `.cpu()` a batch for every head's scores, not one per head.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import dcbench.core.distributed as distributed
from dcbench.core.distributed import DistInfo
from dcbench.protocols.metrics import top_hits
from dcbench.protocols.probe.heads import HeadSpec, LinearHead, OptimSettings, ProbeSet, evaluate

# global batches [start, stop) of the 20 rows; the second splits 1 / 0 (rank 1 empty)
BATCHES = [(0, 7), (7, 8), (8, 16), (16, 20)]
SHAPE = (2, 2, 1)  # BN over 2 channels x 2 positions: a one-row slice still has statistics
BN_HEADS = ("b bn", "select b")
READS = ("item", "tolist", "cpu", "numpy", "__float__", "__int__", "__bool__")


def _data() -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    feats = {"a": torch.randn(20, 6, generator=g), "b": torch.randn(20, 4, generator=g)}
    labels = torch.randint(0, 3, (20,), generator=g)
    keep = torch.rand(20, generator=g) > 0.4
    keep[7] = False  # the one-row batch holds no row for the masked heads: they only tick
    keep[16:18] = False  # the last batch keeps only rank 1's rows (18, 19)
    keep[18:20] = True
    return feats, labels, keep


def _probes(device: str = "cpu") -> ProbeSet:
    torch.manual_seed(1)
    heads = [HeadSpec("a wd=0", "a", LinearHead(6, 3), 0.1, 0.0),
             HeadSpec("a wd=1e-2", "a", LinearHead(6, 3), 0.1, 1e-2),
             HeadSpec("b bn", "b", LinearHead(4, 3, bn=True, shape=SHAPE), 0.05, 1e-4),
             HeadSpec("select a", "a", LinearHead(6, 3), 0.1, 1e-4),
             HeadSpec("select b", "b", LinearHead(4, 3, bn=True, shape=SHAPE), 0.05, 0.0)]
    return ProbeSet(heads, OptimSettings(0.9, "sqrt"), len(BATCHES)).to(device)


def _masks(keep: torch.Tensor) -> dict[str, torch.Tensor]:
    return dict.fromkeys(("select a", "select b"), keep)


def _train(probes: ProbeSet, slices: list[tuple[int, int]]) -> list[float]:
    feats, labels, keep = _data()
    losses = []
    for start, stop in slices:
        part = {k: v[start:stop] for k, v in feats.items()}
        losses.append(probes.train_step(part, labels[start:stop], _masks(keep[start:stop])))
    return [float(loss) for loss in losses]


def _state(probes: ProbeSet) -> dict[str, torch.Tensor]:
    out = {f"{name}.{k}": v.clone() for name, head in probes.heads.items()
           for k, v in head.state_dict().items()}
    out.update({f"{name}.lr": torch.tensor(opt.param_groups[0]["lr"], dtype=torch.float64)
                for name, opt in probes.optimizers.items()})
    return out


def test_one_process_step_reads_nothing_back_from_the_device():
    """Every head, masked or not, steps on the meta device: nothing waits for a value."""
    feats, labels, keep = _data()
    probes = _probes("meta")
    meta = {k: v.to("meta") for k, v in feats.items()}
    for start, stop in BATCHES:
        loss = probes.train_step({k: v[start:stop] for k, v in meta.items()},
                                 labels[start:stop].to("meta"), _masks(keep[start:stop]))
        assert loss.device.type == "meta" and loss.dtype == torch.float64
    # the check can fail: a mask on the device needs its row count, i.e. a read
    with pytest.raises((NotImplementedError, RuntimeError)):
        probes.train_step(meta, labels.to("meta"), _masks(keep.to("meta")))


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    distributed._CURRENT = DistInfo(rank=rank, world_size=2)
    counts = {"all_reduce": 0, "broadcast": 0, "reads": 0}
    collectives = {name: getattr(dist, name) for name in ("all_reduce", "broadcast")}

    def counted(name, fn):
        def wrapper(*args, **kwargs):
            counts[name] += 1
            return fn(*args, **kwargs)
        return wrapper

    probes = _probes()
    slices = []
    for start, stop in BATCHES:  # rank 0 takes the first ceil(n / 2) rows
        half = start + (stop - start + 1) // 2
        slices.append((start, half) if rank == 0 else (half, stop))
    for name, fn in collectives.items():
        setattr(dist, name, counted(name, fn))
    methods = {name: getattr(torch.Tensor, name) for name in READS}
    for name, fn in methods.items():
        setattr(torch.Tensor, name, counted("reads", fn))
    try:
        losses = _train(probes, slices)
    finally:
        for name, fn in {**collectives}.items():
            setattr(dist, name, fn)
        for name, fn in methods.items():
            setattr(torch.Tensor, name, fn)
    counts["reads"] -= len(BATCHES)  # _train's own float() of each returned loss
    torch.save({"counts": counts, "losses": losses, "state": _state(probes)},
               Path(out_dir) / f"rank{rank}.pt")
    dist.destroy_process_group()


def _rank0_running_stats(masked: bool) -> dict[str, torch.Tensor]:
    """A plain BatchNorm2d (the rule) fed rank 0's rows of each batch (its masked ones)."""
    feats, _, keep = _data()
    norm = torch.nn.BatchNorm2d(SHAPE[0], affine=False)
    for start, stop in BATCHES:
        rows = torch.arange(start, start + (stop - start + 1) // 2)
        if masked:
            rows = rows[keep[rows]]
        if rows.numel():
            norm(feats["b"][rows].view(-1, *SHAPE))
    return {k: v.double() for k, v in norm.state_dict().items()}


def test_two_processes_sync_once_per_step_and_train_like_one(tmp_path: Path):
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    reference = _probes()  # one process, the whole global batches
    losses = _train(reference, BATCHES)
    want = _state(reference)
    outs = [torch.load(tmp_path / f"rank{rank}.pt") for rank in (0, 1)]
    for out in outs:
        assert out["counts"] == {"all_reduce": len(BATCHES), "broadcast": 0,
                                 "reads": len(BATCHES)}
        assert out["state"].keys() == want.keys()
        for key, value in want.items():
            if key.startswith(BN_HEADS):  # per-rank batch statistics: not one process's
                torch.testing.assert_close(out["state"][key], outs[0]["state"][key],
                                           rtol=0, atol=0, msg=key)
            else:
                torch.testing.assert_close(out["state"][key].to(value.dtype), value,
                                           rtol=1e-6, atol=1e-7, msg=key)
        for name in BN_HEADS:
            for key, value in _rank0_running_stats(name.startswith("select")).items():
                torch.testing.assert_close(out["state"][f"{name}.norm.{key}"].double(), value,
                                           rtol=1e-6, atol=1e-7, msg=f"{name} {key}")
    assert outs[0]["losses"] == outs[1]["losses"]
    assert len(losses) == len(outs[0]["losses"])


def test_evaluation_reads_the_device_once_per_batch_not_per_head(monkeypatch):
    """`evaluate` copies every head's scores and the labels in one `.cpu()` a batch, and
    counts the same hits as a plain per-head loop."""
    feats, labels, _ = _data()
    probes = _probes()
    batches = [({k: v[s:s + 5] for k, v in feats.items()}, labels[s:s + 5], 1)
               for s in range(0, 20, 5)]
    reads = []
    real = torch.Tensor.cpu
    monkeypatch.setattr(torch.Tensor, "cpu", lambda self, *a, **k: (reads.append(1),
                                                                    real(self, *a, **k))[1])
    got = evaluate(probes, batches)
    monkeypatch.undo()
    assert len(reads) == len(batches)
    for name in probes.heads:  # the reference: each head's top-1 hits, batch by batch
        hits = sum(int(top_hits(probes.logits(f, [name])[name], y, 5)[:, 0].sum())
                   for f, y, _ in batches)
        assert got[name]["top1"] == pytest.approx(100.0 * hits / 20)
