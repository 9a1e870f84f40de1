"""LR schedules, the multi-head trainer and its checkpoint/resume (the engine loop)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dcbench.protocols.probe.batch_sources import TensorSource
from dcbench.protocols.probe.feature_cache import FeatureSet
from dcbench.protocols.probe.heads import (
    HeadSpec,
    LinearHead,
    OptimSettings,
    ProbeSet,
    lr_factor,
    train_phase,
)


def _lrs(schedule: str, lr0: float, wd: float, iters: int, steps: int, **kw) -> list[float]:
    head = LinearHead(4, 2)
    probes = ProbeSet([HeadSpec("h", "x", head, lr0, wd)],
                      OptimSettings(0.9, schedule, **kw), iters)
    out = []
    for _ in range(steps):
        out.append(probes.optimizers["h"].param_groups[0]["lr"])
        probes.train_step({"x": torch.zeros(3, 4)}, torch.tensor([0, 1, 0]))
    return out


def test_sqrt_schedule_matches_the_eval_linear_formula():
    lr0, wd = 0.01, 1e-2
    got = _lrs("sqrt", lr0, wd, iters=5, steps=40)
    expected = [lr0 / math.sqrt(1 + lr0 * wd * t) for t in range(40)]
    assert np.allclose(got, expected, rtol=1e-12)
    assert math.isclose(lr_factor("sqrt", 0.01, 1e-4, 10)(10**6), 1 / math.sqrt(2.0))


def test_step_schedule_drops_at_epoch_milestones():
    got = _lrs("step", 0.1, 0.0, iters=3, steps=12, milestones=(2, 3))
    assert np.allclose(got, [0.1] * 6 + [0.01] * 3 + [0.001] * 3)


def test_heads_train_independently_with_their_own_weight_decay():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 5, generator=gen)
    y = (x[:, 0] > 0).long()
    torch.manual_seed(0)
    heads = [HeadSpec(f"wd{wd}", "x", LinearHead(5, 2), 0.1, wd) for wd in (0.0, 10.0)]
    probes = ProbeSet(heads, OptimSettings(0.9, "constant"), 1)
    for _ in range(50):
        probes.train_step({"x": x}, y)
    norms = {h.name: h.module.linear.weight.norm().item() for h in heads}
    assert norms["wd10.0"] < norms["wd0.0"] / 5


def _phase(work_dir, epochs):
    gen = torch.Generator().manual_seed(0)
    feats = FeatureSet(torch.randn(40, 6, generator=gen), torch.arange(40) % 3,
                       torch.arange(40))
    src = TensorSource({"x": feats})
    with torch.random.fork_rng():
        torch.manual_seed(0)
        probes = ProbeSet([HeadSpec("h", "x", LinearHead(6, 3), 0.05, 1e-4)],
                          OptimSettings(0.9, "sqrt"), 5)
    from dcbench.protocols.probe.heads import evaluate

    return train_phase(probes, epochs=epochs, work_dir=work_dir, phase="t", progress=False,
                     train_batches=lambda e: src.train_batches(None, e, 0, 8),
                     evaluate_fn=lambda: evaluate(probes, src.eval_batches(None)))


def test_interrupted_and_resumed_phase_equals_an_uninterrupted_one(tmp_path):
    full = _phase(None, 4)
    _phase(tmp_path, 2)  # "killed" after epoch 2; its checkpoint stays
    resumed = _phase(tmp_path, 4)
    assert resumed == full
    assert (tmp_path / "log.jsonl").read_text().count("\n") == 4


def test_probe_set_rejects_unknown_schedule():
    with pytest.raises(ValueError, match="unknown schedule"):
        ProbeSet([HeadSpec("h", "x", LinearHead(2, 2), 0.1, 0.0)],
                 OptimSettings(0.9, "cosine"), 1)


def test_goyal_bn_head_normalises_each_channel_like_batchnorm2d():
    """goyal2019 (issue 11 item 5): per-channel statistics over (N, H, W) of the pooled map,
    no affine (VISSL / Goyal's SpatialBN), not per flattened feature."""
    gen = torch.Generator().manual_seed(0)
    c, h, w = 3, 2, 2
    x = torch.randn(8, c, h, w, generator=gen) * torch.tensor([1.0, 5.0, 0.2]).view(1, 3, 1, 1)
    head = LinearHead(c * h * w, 4, bn=True, shape=(c, h, w))
    head.train()
    with torch.no_grad():
        head.linear.weight.copy_(torch.eye(4, c * h * w))  # read out the first 4 features
        head.linear.bias.zero_()
        out = head(x.flatten(1))
    # reference written from the rule: (x - mean_c) / sqrt(var_c + eps), biased var over N,H,W
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    var = x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    expected = ((x - mean) / torch.sqrt(var + 1e-5)).flatten(1)[:, :4]
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    assert sum(p.numel() for p in head.norm.parameters()) == 0  # affine-free
    assert head.norm.running_mean.shape == (c,)  # one statistic per channel
    assert LinearHead(12, 4).norm is None  # dc2018 RegLog: no normalisation


def test_fixed_weight_decay_probe_equals_the_eval_linear_loop():
    """weight_decay_selection=fixed (issue 11 item 9) trains exactly as eval_linear.py with
    --wd -7: SGD(lr0, momentum 0.9, wd 1e-7), lr_t = lr0 / sqrt(1 + lr0 * wd * t)."""
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(24, 6, generator=gen), torch.randint(0, 3, (24,), generator=gen)
    torch.manual_seed(0)
    ours = LinearHead(6, 3)
    ref = torch.nn.Linear(6, 3)
    ref.load_state_dict(ours.linear.state_dict())
    lr0, wd = 0.5, 1e-7
    probes = ProbeSet([HeadSpec("h", "x", ours, lr0, wd)], OptimSettings(0.9, "sqrt"), 3)
    opt = torch.optim.SGD(ref.parameters(), lr=lr0, momentum=0.9, weight_decay=wd)
    for t in range(30):
        batch = slice(8 * (t % 3), 8 * (t % 3) + 8)
        for group in opt.param_groups:  # eval_linear.py's learning_rate_decay
            group["lr"] = lr0 / math.sqrt(1 + lr0 * wd * t)
        loss = torch.nn.functional.cross_entropy(ref(x[batch]), y[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
        probes.train_step({"x": x[batch]}, y[batch])
    torch.testing.assert_close(ours.linear.weight, ref.weight, rtol=1e-6, atol=1e-7)
