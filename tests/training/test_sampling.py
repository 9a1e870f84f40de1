"""Uniform sampling over pseudo-labels, as the training loop uses it (data/samplers.py)."""

from __future__ import annotations

import numpy as np
from scipy.stats import chisquare

from dcbench.data.samplers import DistributedUniformLabelSampler, UniformLabelSampler


def skewed_labels() -> np.ndarray:
    # one dominant cluster (900 images), 9 small ones (5..45), and 20 unassigned images
    sizes = [900] + [5 * (i + 1) for i in range(9)]
    labels = np.concatenate([np.full(s, c) for c, s in enumerate(sizes)] + [np.full(20, -1)])
    return np.random.default_rng(0).permutation(labels)


def test_label_frequencies_are_uniform_over_clusters() -> None:
    labels = skewed_labels()
    sampler = UniformLabelSampler(labels, num_samples=5000, seed=3)
    drawn = labels[sampler.indices()]
    assert len(drawn) == 5000 and (drawn >= 0).all()
    counts = np.bincount(drawn, minlength=10)
    # uniform: 500 each (up to truncation of the last ceil-sized round); chi2 cannot reject
    assert counts.min() >= 490 and counts.max() <= 510
    assert chisquare(counts).pvalue > 0.05


def test_distributed_shares_are_the_single_process_draw() -> None:
    labels = skewed_labels()
    single = UniformLabelSampler(labels, 1001, seed=7)
    single.set_epoch(4)
    shares = []
    for rank in range(2):
        s = DistributedUniformLabelSampler(labels, 1001, seed=7, rank=rank, world_size=2)
        s.set_epoch(4)
        shares.append(s.indices())
    assert len(shares[0]) == len(shares[1]) == 501
    merged = np.empty(1002, dtype=np.int64)
    merged[0::2], merged[1::2] = shares
    np.testing.assert_array_equal(merged[:1001], single.indices())


def test_epochs_draw_differently_and_reproducibly() -> None:
    labels = skewed_labels()
    s = UniformLabelSampler(labels, 300, seed=1)
    s.set_epoch(0)
    a = s.indices()
    s.set_epoch(1)
    b = s.indices()
    s.set_epoch(0)
    assert not np.array_equal(a, b) and np.array_equal(a, s.indices())
