"""The resumable fine-tune loop: LR steps, seeded augmentation, exact resume after a crash."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from dcbench.core.errors import UserError
from dcbench.engine.resumable import LoopCheckpoint, StateBundle
from dcbench.protocols.voc import finetune_base as ft


class NoisyItems(Dataset):
    """Items whose 'augmentation' is a torch.rand draw: the RNG stream is observable."""

    samples = [(f"item{i}", 0) for i in range(10)]

    def __len__(self) -> int:
        return 10

    def __getitem__(self, index: int):
        x = torch.full((4,), index / 10) + torch.rand(4)
        return x, torch.tensor(float(index % 3)), index


def test_step_lr_halves_every_stepsize():
    assert ft.step_lr(0.003, 0, 5000, 0.5) == pytest.approx(0.003)
    assert ft.step_lr(0.003, 4999, 5000, 0.5) == pytest.approx(0.003)
    assert ft.step_lr(0.003, 5000, 5000, 0.5) == pytest.approx(0.0015)
    assert ft.step_lr(0.003, 15000, 5000, 0.5) == pytest.approx(0.003 / 8)


def test_seeded_view_is_order_independent_and_epoch_dependent():
    data = NoisyItems()
    view = ft.SeededView(data, seed=1, stream=1, epoch=0)
    forward = [view[i][0] for i in range(10)]
    backward = [view[i][0] for i in reversed(range(10))][::-1]
    for a, b in zip(forward, backward, strict=True):
        torch.testing.assert_close(a, b)
    other_epoch = ft.SeededView(data, seed=1, stream=1, epoch=1)[3][0]
    assert not torch.equal(other_epoch, forward[3])
    before = torch.get_rng_state()
    view[0]
    assert torch.equal(before, torch.get_rng_state())  # the caller's RNG is untouched


def test_epoch_order_is_a_seeded_permutation():
    a = ft.epoch_order(10, seed=0, epoch=0)
    assert sorted(a) == list(range(10))
    assert a == ft.epoch_order(10, seed=0, epoch=0)
    assert a != ft.epoch_order(10, seed=0, epoch=1)
    assert ft.epoch_order(4, 0, 0, shuffle=False) == [0, 1, 2, 3]


def _train(tmp_path, iterations, crash_at=None, every=3):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    calls = {"n": 0}

    def step(batch):
        calls["n"] += 1
        if crash_at is not None and calls["n"] == crash_at:
            raise KeyboardInterrupt
        out = model(batch.images).squeeze(1)  # dropout draws from the global RNG
        loss = ((out - batch.labels) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return float(loss.detach())

    ckpt = LoopCheckpoint(tmp_path / "checkpoint.pt", "cfg", rng=True)
    batches = ft.epoch_batches(NoisyItems(), batch_size=4, seed=5, workers=0)
    ft.train_iterations(model, opt, batches=batches, step=step, iterations=iterations, lr=0.05,
                        stepsize=4, gamma=0.5, seed=7, checkpoint=ckpt, every=every)
    return model


def test_resume_after_crash_equals_uninterrupted_run(tmp_path):
    straight = _train(tmp_path / "a", 10)
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path / "b", 10, crash_at=8)  # checkpoint at 6 (every 3) survives
    state = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert state["position"]["iteration"] == 6
    resumed = _train(tmp_path / "b", 10)
    for p, q in zip(straight.parameters(), resumed.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_checkpoint_from_another_config_is_refused(tmp_path):
    _train(tmp_path, 3)
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(UserError, match="different protocol config"):
        LoopCheckpoint(tmp_path / "checkpoint.pt", "other", rng=True).load(
            StateBundle(model=model, optimizer=opt))


def test_divergence_is_reported():
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    batches = ft.epoch_batches(NoisyItems(), batch_size=4, seed=0, workers=0)
    with pytest.raises(UserError, match="diverged"):
        ft.train_iterations(model, opt, batches=batches, step=lambda b: float("nan"),
                            iterations=2, lr=0.1, stepsize=10, gamma=0.5, seed=0)
