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


def caffe_sgd_port(params: dict[str, torch.Tensor], grads: list[dict[str, torch.Tensor]], *,
                   lr: float, momentum: float, weight_decay: float,
                   mults: dict[str, tuple[float, float]]) -> dict[str, torch.Tensor]:
    """Caffe's SGDSolver, per blob: local_rate = lr * lr_mult, local_decay = weight_decay *
    decay_mult; history = momentum * history + local_rate * (grad + local_decay * w);
    w -= history (Regularize then ComputeUpdateValue then Update), float64."""
    w = {k: v.double().clone() for k, v in params.items()}
    history = {k: torch.zeros_like(v) for k, v in w.items()}
    for grad in grads:
        for k in w:
            lr_mult, decay_mult = mults[k]
            diff = grad[k].double() + weight_decay * decay_mult * w[k]
            history[k] = momentum * history[k] + lr * lr_mult * diff
            w[k] = w[k] - history[k]
    return w


@pytest.mark.parametrize(("bias_lr", "bias_decay"), [(2.0, 1.0), (2.0, 0.0), (1.0, 1.0)])
def test_param_groups_follow_caffe_lr_and_decay_mults(bias_lr, bias_decay):
    """train_cls.py setLR(t, 1, 2) / setDecay(t, 1, 1): conv/fc biases at bias_lr x the lr,
    bias_decay x the decay; weights and BN affine parameters at 1 and 1; frozen ones out."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(12, 2),
                        nn.Linear(2, 2))
    net[4].requires_grad_(False)
    groups = ft.sgd_param_groups(net, weight_decay=0.05, bias_lr_mult=bias_lr,
                                 bias_decay_mult=bias_decay)
    optimizer = torch.optim.SGD(groups, lr=0.1, momentum=0.9, weight_decay=0.05)
    names = {id(p): n for n, p in net.named_parameters()}
    assert sorted(names[id(p)] for g in groups for p in g["params"]) == sorted(
        n for n, p in net.named_parameters() if p.requires_grad)
    mults = {n: ((bias_lr, bias_decay) if n in ("0.bias", "3.bias") else (1.0, 1.0))
             for n, p in net.named_parameters() if p.requires_grad}
    start = {n: p.detach().clone() for n, p in net.named_parameters() if n in mults}
    grads = [{n: torch.randn_like(p) for n, p in start.items()} for _ in range(3)]
    for grad in grads:
        for group in optimizer.param_groups:  # what train_iterations does before each step
            group["lr"] = 0.1 * group.get("lr_mult", 1.0)
        for n, p in net.named_parameters():
            if n in grad:
                p.grad = grad[n].clone()
        optimizer.step()
    want = caffe_sgd_port(start, grads, lr=0.1, momentum=0.9, weight_decay=0.05, mults=mults)
    for n, p in net.named_parameters():
        if n in want:
            torch.testing.assert_close(p.detach().double(), want[n], rtol=1e-5, atol=1e-6)
    assert len(groups) == (1 if (bias_lr, bias_decay) == (1.0, 1.0) else 2)
