"""The torch k-means against faiss (run_kmeans), a brute-force numpy assignment, and the
thesis's no-empty-cluster rule checked directly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import normalized_mutual_info_score as nmi

from dcbench.clustering.kmeans import run_kmeans
from dcbench.clustering.torch_kmeans import assign, initial_ids, split_empty, torch_kmeans
from dcbench.core.errors import UserError


def planted(n: int, k: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((k, d)) * 3.0
    truth = rng.integers(0, k, n)
    return (centers[truth] + rng.standard_normal((n, d))).astype(np.float32), truth


def test_nmi_to_planted_truth_within_001_of_faiss() -> None:
    # a single seeding lands in a different local optimum than faiss's (its permutation
    # generator differs), so the NMI is compared as the mean over 4 data sets and seedings
    ours, ref = [], []
    for seed in range(4):
        x, truth = planted(4000, 40, 32, seed)
        ours.append(nmi(truth, torch_kmeans(x, 40, niter=20, seed=seed)[0]))
        ref.append(nmi(truth, run_kmeans(x, 40, niter=20, seed=seed)[0]))
    assert abs(np.mean(ours) - np.mean(ref)) <= 0.01
    assert min(ours) > 0.9


def test_loss_is_the_last_iterations_sum_of_squared_distances() -> None:
    x, _ = planted(600, 5, 8, 2)
    labels, loss = torch_kmeans(x, 5, niter=1, seed=4)
    init = x[initial_ids(600, 5, 4)]  # one iteration: objective of the initial centroids
    brute = ((x[:, None, :] - init[None]) ** 2).sum(-1).min(1).sum()
    assert loss == pytest.approx(float(brute), rel=1e-5)
    assert labels.dtype == np.int64 and labels.shape == (600,)


def test_chunked_assignment_equals_brute_force() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1000, 16)).astype(np.float32)
    c = rng.standard_normal((37, 16)).astype(np.float32)
    labels, dists = assign(torch.from_numpy(x), torch.from_numpy(c), rows=97)
    brute = ((x[:, None, :] - c[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(labels.numpy(), brute.argmin(1))
    np.testing.assert_allclose(dists.numpy(), brute.min(1), rtol=1e-4, atol=1e-4)


def test_every_cluster_non_empty_even_with_duplicate_rows() -> None:
    # 3 distinct points repeated: at most 3 clusters can hold members after Lloyd steps,
    # so 7 of the 10 must be filled by the thesis rule (half of a random donor)
    x = np.repeat(np.eye(3, 4, dtype=np.float32), 20, axis=0)
    labels, _ = torch_kmeans(x, 10, niter=5, seed=0)
    assert np.bincount(labels, minlength=10).min() >= 1 and labels.max() == 9


def test_split_empty_copies_a_donor_with_symmetric_perturbation() -> None:
    c = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [4.0, 4.0, 4.0]])
    counts = np.array([5, 0, 1])  # donor weight = size - 1: only cluster 0 can donate
    out = split_empty(c.clone(), counts, np.random.default_rng(0))
    eps = 1 / 1024
    np.testing.assert_allclose(out[1].numpy(), [1 + eps, 2 * (1 - eps), 3 * (1 + eps)])
    np.testing.assert_allclose(out[0].numpy(), [1 - eps, 2 * (1 + eps), 3 * (1 - eps)])
    np.testing.assert_array_equal(out[2].numpy(), c[2].numpy())


def test_refuses_k_above_n() -> None:
    with pytest.raises(UserError, match="k-means needs"):
        torch_kmeans(np.zeros((3, 2), np.float32), 4)
