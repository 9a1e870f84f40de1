"""The seeded stratified held-out split (and the split loader's refusals, via the CLI tests)."""

from __future__ import annotations

import numpy as np

from dcbench.protocols.probe.splits import stratified_split


def test_stratified_split_is_seeded_disjoint_and_keeps_every_class():
    labels = np.repeat(np.arange(5), [10, 10, 10, 3, 1])
    train, held = stratified_split(labels, 0.2, seed=3)
    again = stratified_split(labels, 0.2, seed=3)
    assert np.array_equal(train, again[0]) and np.array_equal(held, again[1])
    assert not set(train) & set(held) and len(train) + len(held) == labels.size
    assert set(labels[train]) == set(range(5))  # the singleton class stays in training
    assert [int((labels[held] == c).sum()) for c in range(5)] == [2, 2, 2, 1, 0]
    assert not np.array_equal(held, stratified_split(labels, 0.2, seed=4)[1])
