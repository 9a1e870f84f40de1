"""The VOC fine-tunes' live view: loss and LR every 20 iterations (section = the protocol),
each step once across a crash and resume, the same values as an uninterrupted run."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dcbench.core.trackers import tensorboard_tracker
from dcbench.core.tracking import activated
from dcbench.engine.resumable import LoopCheckpoint
from dcbench.protocols.voc import finetune_base as ft

from .test_finetune_base import NoisyItems


def _train(folder, crash_at=None):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    calls = {"n": 0}

    def step(batch):
        calls["n"] += 1
        if crash_at is not None and calls["n"] == crash_at:
            raise KeyboardInterrupt
        loss = ((model(batch.images).squeeze(1) - batch.labels) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return float(loss.detach())

    with activated(tensorboard_tracker(folder / "tensorboard")):
        ft.train_iterations(model, opt, batches=ft.epoch_batches(NoisyItems(), batch_size=4,
                                                                 seed=5, workers=0),
                            step=step, iterations=60, lr=0.01, stepsize=25, gamma=0.5, seed=7,
                            checkpoint=LoopCheckpoint(folder / "checkpoint.pt", "cfg", rng=True),
                            every=30, section="voc07-cls")


def _scalars(folder):
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    reader = accumulator.EventAccumulator(str(folder / "tensorboard" / "voc07-cls"))
    reader.Reload()
    return {tag: [(e.step, e.value) for e in reader.Scalars(tag)]
            for tag in reader.Tags()["scalars"]}


def test_loss_and_lr_per_iteration_point_once_across_a_resume(tmp_path):
    pytest.importorskip("tensorboard")
    _train(tmp_path / "straight")
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path / "crashed", crash_at=50)  # logged 20, 40; checkpoint at 30
    _train(tmp_path / "crashed")  # resumes at 30: step 40 again, then 60
    straight, resumed = _scalars(tmp_path / "straight"), _scalars(tmp_path / "crashed")
    assert sorted(straight) == ["train/loss", "train/lr"]
    assert [s for s, _ in resumed["train/loss"]] == [20, 40, 60]
    assert [s for s, _ in straight["train/loss"]] == [20, 40, 60]
    assert [v for _, v in resumed["train/loss"]] == pytest.approx(
        [v for _, v in straight["train/loss"]])
    # the step schedule: lr 0.01 * 0.5 ** (iteration // 25) at iterations 19, 39, 59
    assert [v for _, v in straight["train/lr"]] == pytest.approx([0.01, 0.005, 0.0025])
