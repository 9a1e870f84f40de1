"""`shared_fits` under 2 gloo processes: each rank fits only its share of the classes, and
every rank ends with the fits one process makes with `fit_class` (same cost, CV APs and
weights, exactly), every fit recorded once per rank."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import dcbench.core.distributed as distributed
import dcbench.protocols.svm.core as svm_core
from dcbench.core.distributed import DistInfo
from dcbench.protocols.svm.core import SVMSettings, fit_class, shared_fits

CLASSES = [0, 2, 3, 4, 5]  # class 1 "already journaled": not refitted
SETTINGS = SVMSettings(costs=(0.1, 1.0), folds=2, seed=0)


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5)).astype(np.float32)
    targets = np.where(rng.random((40, 6)) < 0.4, 1, -1).astype(np.int8)
    targets[rng.random((40, 6)) < 0.1] = 0  # left out of that class's fit
    return x, targets


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    distributed._CURRENT = DistInfo(rank=rank, world_size=2)
    fitted: list[int] = []
    real = svm_core.fit_class

    def counted(features, targets, settings, costs=None):
        fitted.append(1)
        return real(features, targets, settings, costs)

    svm_core.fit_class = counted
    recorded: list[int] = []
    x, targets = _data()
    fits = shared_fits(x, targets, SETTINGS, classes=CLASSES, jobs=1,
                       record=lambda c, fit: recorded.append(c))
    svm_core.fit_class = real
    torch.save({"fits": {c: f.to_record() for c, f in fits.items()}, "order": list(fits),
                "fitted": len(fitted), "recorded": recorded}, Path(out_dir) / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_two_processes_share_the_classes_and_get_every_fit(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    x, targets = _data()
    want = {}
    for c in CLASSES:  # one process, the rule: fit_class on the class's kept rows
        keep = targets[:, c] != 0
        want[c] = fit_class(x[keep], targets[keep, c], SETTINGS).to_record()
    outs = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=False) for rank in (0, 1)]
    assert [out["fitted"] for out in outs] == [3, 2]  # classes[0::2], classes[1::2]
    for out in outs:
        assert out["order"] == CLASSES and out["fits"] == want
        assert sorted(out["recorded"]) == CLASSES


def test_one_process_fits_every_class_in_order() -> None:
    x, targets = _data()
    seen: list[int] = []
    fits = shared_fits(x, targets, SETTINGS, classes=CLASSES, record=lambda c, f: seen.append(c))
    assert list(fits) == CLASSES == seen
