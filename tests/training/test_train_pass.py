"""Top-layer updates: momentum-free SGD, and SGT's row subsets (thesis 4.7)."""

from __future__ import annotations

import torch
from torch import nn

from dcbench.training.train_pass import sgd_rows, sgt_rows


def layer_with_grad(seed: int = 0) -> nn.Linear:
    g = torch.Generator().manual_seed(seed)
    layer = nn.Linear(5, 10)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(10, 5, generator=g))
        layer.bias.copy_(torch.randn(10, generator=g))
    x, y = torch.randn(4, 5, generator=g), torch.tensor([1, 3, 3, 7])
    nn.functional.cross_entropy(layer(x), y).backward()
    return layer


def test_full_update_equals_torch_sgd_without_momentum() -> None:
    ours, ref = layer_with_grad(), layer_with_grad()
    torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.0, weight_decay=1e-3).step()
    sgd_rows(ours, None, lr=0.1, wd=1e-3)
    assert torch.equal(ours.weight, ref.weight) and torch.equal(ours.bias, ref.bias)


def test_row_update_touches_only_the_chosen_rows() -> None:
    ours, ref = layer_with_grad(), layer_with_grad()
    before = ours.weight.detach().clone()
    rows = torch.tensor([1, 3, 8])
    sgd_rows(ours, rows, lr=0.1, wd=1e-3)
    torch.optim.SGD(ref.parameters(), lr=0.1, weight_decay=1e-3).step()
    others = torch.ones(10, dtype=torch.bool)
    others[rows] = False
    assert torch.equal(ours.weight[others], before[others])  # no decay on untouched rows
    assert torch.equal(ours.weight[rows], ref.weight[rows])


def test_sgt_rows_hold_the_targets_and_fill_the_budget() -> None:
    g = torch.Generator().manual_seed(0)
    targets = torch.tensor([4, 4, 9, 2])
    rows = sgt_rows(targets, n_rows=50, budget=8, generator=g)
    assert len(rows) == 8 and len(set(rows.tolist())) == 8
    assert {2, 4, 9} <= set(rows.tolist()) and torch.equal(rows, rows.sort().values)
    # budget below the number of targets present: the targets win; budget above k: all rows
    assert set(sgt_rows(targets, 50, 2, g).tolist()) == {2, 4, 9}
    assert sgt_rows(torch.tensor([1, 4]), 6, 100, g).tolist() == [0, 1, 2, 3, 4, 5]
