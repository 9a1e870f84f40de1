"""One pass per epoch feeds every probe head: checked against plain training loops written
from the rule (issue 28): masking, independence from held-out rows, the same choice as a
plain-loop reference on the same batches."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from dcbench.core.errors import UserError
from dcbench.protocols.probe import one_pass
from dcbench.protocols.probe.batch_sources import TensorSource
from dcbench.protocols.probe.feature_cache import FeatureSet
from dcbench.protocols.probe.heads import HeadSpec, LinearHead, OptimSettings, ProbeSet
from dcbench.protocols.probe.selection import FitSettings, fit_with_selection


def _blobs(n: int, seed: int, classes: int = 3, dim: int = 8, shift: float = 2.0) -> FeatureSet:
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    x = torch.eye(classes, dim)[labels] * shift + torch.randn(n, dim, generator=gen)
    return FeatureSet(x, labels, torch.arange(n))


def test_a_mask_that_holds_out_nothing_trains_like_no_mask_and_a_plain_loop():
    """(a) selection head with an all-true mask == final head == plain SGD loop."""
    data = _blobs(24, 0)
    torch.manual_seed(0)
    ref = nn.Linear(8, 3)
    heads = []
    for name in ("select", "final"):
        head = LinearHead(8, 3)
        head.linear.load_state_dict(ref.state_dict())
        heads.append(HeadSpec(name, "x", head, 0.1, 1e-3))
    probes = ProbeSet(heads, OptimSettings(0.9, "sqrt"), 3)
    opt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    for t in range(9):
        batch = slice(8 * (t % 3), 8 * (t % 3) + 8)
        x, y = data.features[batch], data.labels[batch]
        probes.train_step({"x": x}, y, {"select": torch.ones(8, dtype=torch.bool)})
        for group in opt.param_groups:
            group["lr"] = 0.1 / math.sqrt(1 + 0.1 * 1e-3 * t)
        opt.zero_grad()
        nn.functional.cross_entropy(ref(x), y).backward()
        opt.step()
    select, final = (h.module.linear for h in heads)
    assert torch.equal(select.weight, final.weight) and torch.equal(select.bias, final.bias)
    torch.testing.assert_close(select.weight, ref.weight, rtol=1e-6, atol=1e-7)


def test_a_masked_step_is_the_plain_step_on_the_kept_rows_and_an_empty_mask_only_ticks():
    data = _blobs(8, 1)
    torch.manual_seed(0)
    ref = nn.Linear(8, 3)
    head = LinearHead(8, 3)
    head.linear.load_state_dict(ref.state_dict())
    probes = ProbeSet([HeadSpec("h", "x", head, 0.5, 0.1)], OptimSettings(0.0, "sqrt"), 1)
    keep = torch.tensor([1, 0, 1, 1, 0, 0, 1, 0], dtype=torch.bool)
    probes.train_step({"x": data.features}, data.labels, {"h": keep})
    # plain SGD (no momentum) on the kept rows: w - lr * (grad of their mean loss + wd * w)
    weight = ref.weight.detach().clone()
    loss = nn.functional.cross_entropy(ref(data.features[keep]), data.labels[keep])
    grad = torch.autograd.grad(loss, ref.weight)[0]
    torch.testing.assert_close(head.linear.weight, weight - 0.5 * (grad + 0.1 * weight))
    before = head.linear.weight.clone()
    probes.train_step({"x": data.features}, data.labels, {"h": torch.zeros(8, dtype=torch.bool)})
    assert torch.equal(head.linear.weight, before)  # no step ...
    lr = probes.optimizers["h"].param_groups[0]["lr"]
    assert lr == pytest.approx(0.5 / math.sqrt(1 + 0.5 * 0.1 * 2))  # ... but the schedule ticked


def _sources(train: FeatureSet, val: FeatureSet) -> tuple[TensorSource, TensorSource]:
    return TensorSource({"x": train}), TensorSource({"x": val})


def _train(train: FeatureSet, val: FeatureSet, held: np.ndarray, bn: bool = False,
           epochs: int = 3) -> ProbeSet:
    cands = ((0.05, 1e-4), (0.2, 0.0))
    heads = one_pass.build_heads(["x"], cands, lambda _: LinearHead(8, 3, bn), seed=0)
    probes = ProbeSet(heads, OptimSettings(0.9, "step", (2,), 0.1), 5)
    src, val_src = _sources(train, val)
    rest = np.setdiff1d(np.arange(train.labels.numel()), held)
    one_pass.train_one_pass(probes, src, val_src, rest, held, epochs=epochs, seed=0,
                            batch_size=8, eval_batch_size=16)
    return probes


@pytest.mark.parametrize("bn", [False, True])
def test_selection_heads_never_depend_on_held_out_rows(bn):
    """(b) change the held-out rows' features and labels: every selection head (weights and,
    with the BN head, its running statistics) stays bit-identical; final heads change."""
    train, val = _blobs(40, 2), _blobs(12, 3)
    held = np.array([1, 5, 6, 12, 19, 23, 30, 31, 38])
    noisy = train.features.clone()
    noisy[held] = torch.randn(held.size, 8, generator=torch.Generator().manual_seed(9)) * 50
    labels = train.labels.clone()
    labels[held] = (labels[held] + 1) % 3
    probes = _train(train, val, held, bn)
    a = probes.state_dict()
    b = _train(FeatureSet(noisy, labels, train.indices), val, held, bn).state_dict()
    for name, key in probes._keys.items():
        same = all(torch.equal(a[k], b[k]) for k in a if k.startswith(f"_modules_by_key.{key}."))
        assert same == name.startswith("select:"), name


def _reference_choice(train: FeatureSet, val: FeatureSet, held: np.ndarray, cands, epochs: int,
                      batch_size: int, seed: int):
    """A plain loop from the rule: nn.Linear heads, SGD with lr0 / sqrt(1 + lr0 wd t) where t
    counts the pass's batches, held-out rows dropped from the selection heads' batches (no
    step when none is left), the final heads on every row; best held-out top-1 (earliest
    epoch, then first candidate); that candidate's final head's val curve."""
    dim, classes = train.features.shape[1], 3
    torch.manual_seed(seed * 1000 + 1)
    select = [nn.Linear(dim, classes) for _ in cands]
    torch.manual_seed(seed * 1000 + 2)
    final = [nn.Linear(dim, classes) for _ in cands]
    opts = [torch.optim.SGD(m.parameters(), lr=lr, momentum=0.9, weight_decay=wd)
            for m, (lr, wd) in zip(select + final, cands + cands, strict=True)]
    is_held = np.isin(np.arange(train.labels.numel()), held)
    src = TensorSource({"x": train})
    held_curves, val_curves = [[] for _ in cands], [[] for _ in cands]
    t, empty = 0, 0
    for epoch in range(epochs):
        batches = src.train_batches(np.arange(train.labels.numel()), epoch, seed * 1000 + 2,
                                    batch_size, with_positions=True)
        for feats, labels, positions in batches:
            keep = torch.from_numpy(~is_held[positions.numpy()])
            empty += int(not keep.any())
            for i, (model, opt) in enumerate(zip(select + final, opts, strict=True)):
                lr0, wd = (cands + cands)[i]
                x, y = feats["x"], labels
                if i < len(cands):
                    x, y = x[keep], y[keep]
                if y.numel() == 0:
                    continue
                for group in opt.param_groups:
                    group["lr"] = lr0 / math.sqrt(1 + lr0 * wd * t)
                opt.zero_grad()
                nn.functional.cross_entropy(model(x), y).backward()
                opt.step()
            t += 1
        with torch.no_grad():
            for i in range(len(cands)):
                pred = select[i](train.features[held]).argmax(1)
                held_curves[i].append(100.0 * (pred == train.labels[held]).sum().item()
                                      / held.size)
                pred = final[i](val.features).argmax(1)
                val_curves[i].append(100.0 * (pred == val.labels).sum().item()
                                     / val.labels.numel())
    best = max(((h, -e, -i) for i, curve in enumerate(held_curves)
                for e, h in enumerate(curve)))
    i, epoch = -best[2], -best[1]
    return cands[i], epoch + 1, val_curves[i], empty


def test_one_pass_picks_what_a_plain_loop_on_the_same_batches_picks():
    """(c) the (lr, wd, epoch) and the reported val curve equal the plain-loop reference
    (with batches of held-out rows only, where the selection heads skip their step)."""
    train, val = _blobs(36, 4, shift=1.0), _blobs(15, 5, shift=1.0)
    held = np.arange(0, 36, 2)[:14]  # a large held-out share: some batches hold nothing else
    rest = np.setdiff1d(np.arange(36), held)
    cands = ((0.05, 1e-4), (0.5, 1e-2), (0.02, 0.5))
    settings = FitSettings(cands, OptimSettings(0.9, "sqrt"), epochs=5, batch_size=3,
                           eval_batch_size=16, seed=0)
    src, val_src = _sources(train, val)
    out = fit_with_selection(["x"], lambda _: LinearHead(8, 3), src, val_src, rest, held,
                             settings)["x"]
    (lr, wd), epoch, curve, empty = _reference_choice(train, val, held, cands, 5, 3, 0)
    assert empty > 0  # the skip-but-tick rule was exercised
    assert (out.lr, out.weight_decay, out.selected_epoch) == (lr, wd, epoch)
    assert [p["top1"] for p in out.val_curve] == pytest.approx(curve)


def test_one_pass_resumes_and_refuses_a_two_pass_run_dir(tmp_path):
    train, val = _blobs(30, 6), _blobs(9, 7)
    held = np.array([2, 9, 17, 25])
    rest = np.setdiff1d(np.arange(30), held)
    src, val_src = _sources(train, val)

    def fit(epochs, work_dir, selection_pass="one"):
        settings = FitSettings(((0.1, 1e-4),), OptimSettings(0.9, "sqrt"), epochs, 8, 16, 0,
                               selection_pass)
        return fit_with_selection(["x"], lambda _: LinearHead(8, 3), src, val_src, rest, held,
                                  settings, work_dir=work_dir)["x"]

    full = fit(4, None)
    fit(2, tmp_path / "run")  # "killed" after 2 epochs
    assert (tmp_path / "run" / "checkpoints" / "one-pass.pt").is_file()
    assert fit(4, tmp_path / "run") == full
    with pytest.raises(UserError, match="selection_pass=one probe run"):
        fit(4, tmp_path / "run", "two")
    fit(1, tmp_path / "old", "two")
    with pytest.raises(UserError, match=r"selection_pass=two probe run \(checkpoints/select.pt"):
        fit(1, tmp_path / "old")


def test_single_candidate_final_heads_equal_the_two_pass_final_heads():
    """With one (lr, wd) per layer the final heads are the two-pass final phase's heads (same
    init, same batches), so `top1_best_epoch` is unchanged; only the selection differs."""
    train, val = _blobs(30, 8), _blobs(12, 9)
    held = np.array([0, 4, 11, 13, 22, 29])
    rest = np.setdiff1d(np.arange(30), held)
    src, val_src = _sources(train, val)
    outs = {}
    for mode in ("one", "two"):
        settings = FitSettings(((0.1, 1e-4),), OptimSettings(0.9, "sqrt"), 4, 8, 16, 0, mode)
        outs[mode] = fit_with_selection(["x"], lambda _: LinearHead(8, 3), src, val_src, rest,
                                        held, settings)["x"]
    assert outs["one"].val_curve == outs["two"].val_curve
    assert outs["one"].metrics()["val"]["top1_best_epoch"] == \
        outs["two"].metrics()["val"]["top1_best_epoch"]
