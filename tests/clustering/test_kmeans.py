"""PCA-whitening and k-means against independent computations (numpy, scikit-learn)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from sklearn.metrics import normalized_mutual_info_score

from dcbench.clustering.kmeans import (
    covariance,
    derived_seed,
    fill_empty_clusters,
    fit_whitening,
    pca_whiten,
    run_kmeans,
)
from dcbench.core.errors import UserError


def blobs(n: int, k: int, d: int, seed: int, spread: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((k, d)) * spread
    truth = rng.integers(0, k, n)
    return (centers[truth] + rng.standard_normal((n, d))).astype(np.float32), truth


def test_covariance_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((500, 70)) * rng.uniform(0.1, 3, 70) + 5).astype(np.float32)
    t = torch.from_numpy(x)
    got = covariance(t, t.double().mean(0)).numpy()
    np.testing.assert_allclose(got, np.cov(x.astype(np.float64), rowvar=False), atol=1e-4)


def test_pca_whiten_equals_sklearn_whitened_pca_up_to_sign() -> None:
    rng = np.random.default_rng(1)
    mix = rng.standard_normal((60, 60)) * np.linspace(3, 0.2, 60)
    x = (rng.standard_normal((2000, 60)) @ mix + 3).astype(np.float32)
    ours = pca_whiten(x, dim=16)
    ref = PCA(16, whiten=True, svd_solver="full").fit_transform(x.astype(np.float64))
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    assert ours.dtype == np.float32 and ours.shape == (2000, 16)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    signs = np.sign((ours * ref).sum(0))
    np.testing.assert_allclose(ours, ref * signs, atol=2e-3)


def test_whitened_components_have_unit_variance() -> None:
    x, _ = blobs(3000, 5, 40, seed=2)
    w = fit_whitening(x, dim=10)
    y = w.apply(torch.from_numpy(x)).double().numpy()
    np.testing.assert_allclose(y.var(0, ddof=1), 1.0, rtol=1e-3)
    assert np.all(np.diff(w.eigenvalues.numpy()) <= 0)  # descending


def test_pca_refuses_bad_input_and_lowers_dim_for_few_samples() -> None:
    with pytest.raises(UserError, match="PCA dimension"):
        pca_whiten(np.zeros((10, 4), np.float32), dim=5)
    bad = np.ones((10, 4), np.float32)
    bad[0, 0] = np.nan
    with pytest.raises(UserError, match="NaN"):
        pca_whiten(bad, dim=2)
    x = np.random.default_rng(0).standard_normal((6, 20)).astype(np.float32)
    assert pca_whiten(x, dim=16).shape == (6, 5)


def test_kmeans_recovers_planted_clusters() -> None:
    x, truth = blobs(4000, 12, 32, seed=3)
    labels, loss = run_kmeans(pca_whiten(x, 16), 12, niter=20, seed=5)
    assert labels.dtype == np.int64 and labels.shape == (4000,)
    assert np.isfinite(loss) and loss > 0
    assert normalized_mutual_info_score(truth, labels) > 0.9
    again, _ = run_kmeans(pca_whiten(x, 16), 12, niter=20, seed=5)
    np.testing.assert_array_equal(labels, again)


def test_kmeans_has_no_empty_cluster_even_when_forced() -> None:
    # 5 distinct points repeated 40 times and k=13: Lloyd's assignment can fill at most 5
    x = np.repeat(np.eye(5, 8, dtype=np.float32), 40, axis=0)
    labels, _ = run_kmeans(x, 13, seed=0)
    counts = np.bincount(labels, minlength=13)
    assert len(counts) == 13 and counts.min() >= 1


def test_fill_empty_clusters_hand_case() -> None:
    # only cluster 0 can donate (cluster 1 has one member): empty cluster 2 takes 8 // 2 of it
    labels = np.array([0] * 8 + [1])
    out = fill_empty_clusters(labels, k=3, seed=0)
    assert np.bincount(out).tolist() == [4, 1, 4]
    assert np.all(out[labels == 1] == 1) and set(out[labels == 0]) == {0, 2}
    # chained: one cluster of 8, k=4: 8 -> (4, 4) -> (2, 2, 4) -> (2, 2, 2, 2) or (1, 1, 2, 4)
    for seed in range(6):
        out = fill_empty_clusters(np.zeros(8, np.int64), k=4, seed=seed)
        assert sorted(np.bincount(out, minlength=4).tolist()) in ([2, 2, 2, 2], [1, 1, 2, 4])
    with pytest.raises(UserError):
        fill_empty_clusters(np.zeros(3, np.int64), k=4)


def test_kmeans_refuses_k_larger_than_n() -> None:
    with pytest.raises(UserError, match="k-means needs"):
        run_kmeans(np.zeros((5, 3), np.float32), 6)


def test_derived_seeds_are_stable_and_distinct() -> None:
    assert derived_seed(31, 0, 1) == derived_seed(31, 0, 1)
    assert len({derived_seed(31, e, p) for e in range(20) for p in range(8)}) == 160
