"""The count of empty clusters re-split (thesis 3.2), reported by training each epoch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dcbench.clustering.backend import kmeans
from dcbench.clustering.kmeans import fill_empty_clusters
from dcbench.clustering.torch_kmeans import update_centroids


def test_fill_counts_each_empty_cluster_once():
    labels = np.array([0, 0, 0, 0, 3, 3, 3, 1])
    stats: dict[str, int] = {"empty_resplit": 5}
    filled = fill_empty_clusters(labels, 6, seed=0, stats=stats)
    empty_before = int((np.bincount(labels, minlength=6) == 0).sum())  # clusters 2, 4, 5
    assert stats["empty_resplit"] == 5 + empty_before == 8
    assert set(filled.tolist()) == set(range(6))
    assert np.array_equal(fill_empty_clusters(labels, 6, seed=0), filled)  # stats change nothing


def test_torch_update_counts_the_empty_clusters_it_splits():
    sums = torch.arange(12, dtype=torch.float64).reshape(4, 3)
    counts = torch.tensor([5, 0, 3, 0])
    stats: dict[str, int] = {}
    update_centroids(sums, counts, np.random.default_rng(0), stats)
    assert stats == {"empty_resplit": 2}


@pytest.mark.parametrize("backend", ["faiss-cpu", "torch-cpu"])
def test_kmeans_with_fewer_distinct_points_than_clusters_re_splits(backend):
    points = np.random.default_rng(0).normal(size=(4, 8)).astype(np.float32)
    x = np.repeat(points, 10, axis=0)  # 4 distinct points, k = 7: >= 3 clusters run empty
    stats: dict[str, int] = {}
    labels, _ = kmeans(x, 7, 5, 0, backend, stats)
    assert len(np.unique(labels)) == 7
    assert stats["empty_resplit"] >= 3
    plain, _ = kmeans(x, 7, 5, 0, backend)
    assert np.array_equal(plain, labels)
