"""Uniform-over-clusters sampling: uniform, positions agree with labels, distributed split."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import chisquare
from torch.utils.data import Dataset

from dcbench.data.folders import make_loader
from dcbench.data.samplers import DistributedUniformLabelSampler, UniformLabelSampler


def _unbalanced_labels() -> np.ndarray:
    """Cluster 0 huge, 2 and 7 tiny, 1, 3-6 empty (k = 8), shuffled positions."""
    labels = np.array([0] * 900 + [2] * 3 + [7] * 40 + [5] * 1, dtype=np.int64)
    return np.random.default_rng(0).permutation(labels)


def test_label_frequencies_uniform_over_nonempty_clusters() -> None:
    labels = _unbalanced_labels()
    sampler = UniformLabelSampler(labels, num_samples=4000, seed=1)
    idx = np.fromiter(iter(sampler), dtype=np.int64)
    assert len(idx) == len(sampler) == 4000
    drawn = labels[idx]
    clusters, counts = np.unique(drawn, return_counts=True)
    assert clusters.tolist() == [0, 2, 5, 7]  # empty clusters skipped, all others drawn
    assert chisquare(counts).pvalue > 0.01  # uniform over the 4 non-empty clusters
    # without the fix (uniform over images) cluster 0 would take ~95% of the draws
    assert counts[0] < 0.3 * 4000


class _LabelEcho(Dataset):
    def __init__(self, labels: np.ndarray) -> None:
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return torch.zeros(1), int(self.labels[i]), i


def test_positions_and_labels_agree_through_a_loader() -> None:
    labels = _unbalanced_labels()
    sampler = UniformLabelSampler(labels, num_samples=200, seed=3)
    for batch in make_loader(_LabelEcho(labels), 64, sampler=sampler):
        assert torch.equal(batch.labels, torch.from_numpy(labels[batch.indices.numpy()]))


def test_without_replacement_for_large_clusters_and_seeding() -> None:
    labels = np.repeat(np.arange(4), 50)
    sampler = UniformLabelSampler(labels, num_samples=100, seed=0)
    idx = sampler.indices()
    assert len(set(idx.tolist())) == 100  # 25 per cluster out of 50: no repeats
    first = sampler.indices()
    sampler.set_epoch(1)
    assert not np.array_equal(first, sampler.indices())
    sampler.set_epoch(0)
    assert np.array_equal(first, sampler.indices())
    assert not np.array_equal(first, UniformLabelSampler(labels, 100, seed=9).indices())


def test_negative_labels_never_drawn_and_all_negative_refused() -> None:
    labels = np.array([-1, 0, -1, 1])
    assert set(UniformLabelSampler(labels, 50, seed=0).indices().tolist()) == {1, 3}
    with pytest.raises(ValueError, match="no sample"):
        UniformLabelSampler(-np.ones(3, dtype=int), 5).indices()


@pytest.mark.parametrize("world", [1, 2, 3])
def test_distributed_ranks_are_disjoint_and_cover_the_single_draw(world: int) -> None:
    labels = _unbalanced_labels()
    n = 301
    single = UniformLabelSampler(labels, n, seed=4)
    single.set_epoch(2)
    ranks = []
    for rank in range(world):
        s = DistributedUniformLabelSampler(labels, n, seed=4, rank=rank, world_size=world)
        s.set_epoch(2)
        ranks.append(list(s))
        assert len(ranks[-1]) == len(s) == -(-n // world)
    # interleave the ranks back: positions are disjoint and rebuild the global sequence
    rebuilt = [ranks[p % world][p // world] for p in range(len(ranks[0]) * world)]
    expected = single.indices().tolist()
    assert rebuilt[:n] == expected
    assert rebuilt[n:] == expected[: len(rebuilt) - n]  # padding wraps around


def test_distributed_rejects_bad_rank() -> None:
    with pytest.raises(ValueError, match="invalid rank"):
        DistributedUniformLabelSampler(np.zeros(4, dtype=int), 4, rank=2, world_size=2)
