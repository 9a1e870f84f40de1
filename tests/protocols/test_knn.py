"""k-NN classifier, ratio edge intra-class and NMI cores against independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from dcbench.protocols.knn import knn_metrics, weighted_knn_scores
from dcbench.protocols.knn_graph import knn_graph_metrics
from dcbench.protocols.nmi import nmi_core, partition_metrics


def _brute_force_knn(train, train_labels, test, num_classes, k, t):
    train_n = train / np.linalg.norm(train, axis=1, keepdims=True)
    test_n = test / np.linalg.norm(test, axis=1, keepdims=True)
    out = np.zeros((len(test), num_classes))
    for i, q in enumerate(test_n):
        sims = train_n @ q
        for j in np.argsort(-sims)[:k]:
            out[i, train_labels[j]] += math.exp(sims[j] / t)
    return out


@pytest.mark.parametrize("k", [1, 5, 20, 120])
def test_weighted_knn_matches_brute_force(k):
    rng = np.random.default_rng(k)
    train = rng.normal(size=(120, 16)).astype(np.float32)
    labels = rng.integers(0, 6, size=120)
    test = rng.normal(size=(30, 16)).astype(np.float32)
    got = weighted_knn_scores(train, labels, test, 6, k=k, temperature=0.07)
    expected = _brute_force_knn(train, labels, test, 6, k, 0.07)
    assert np.allclose(got, expected, rtol=1e-4)


def test_k_above_the_training_set_is_refused_not_clipped():
    rng = np.random.default_rng(0)
    train, test = rng.normal(size=(12, 4)), rng.normal(size=(3, 4))
    with pytest.raises(ValueError, match=r"\[1, 12\]"):
        weighted_knn_scores(train, np.zeros(12, int), test, 2, k=13)


def test_knn_on_separable_clusters_is_perfect():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(4, 8)) * 10
    train_y, test_y = np.repeat(np.arange(4), 20), np.repeat(np.arange(4), 5)
    train = centers[train_y] + rng.normal(size=(80, 8))
    test = centers[test_y] + rng.normal(size=(20, 8))
    assert knn_metrics(train, train_y, test, test_y, 4)["top1"] == 100.0


def test_ratio_edge_intra_class_on_a_hand_made_graph():
    # points on a line: class 0 at 0, 1, 2; class 1 at 10, 11; class 2 at 11.4
    x = np.array([[0.0], [1.0], [2.0], [10.0], [11.0], [11.4]], dtype=np.float32)
    y = np.array([0, 0, 0, 1, 1, 2])
    metrics, classes, ratios = knn_graph_metrics(x, y, k=1)
    # 1-NN: 0->1, 1->0|2, 2->1 (all intra); 10->11 (intra), 11->11.4 (inter); 11.4->11 (inter)
    assert list(classes) == [0, 1, 2]
    assert np.allclose(ratios, [1.0, 0.5, 0.0])
    assert math.isclose(metrics["ratio_edge_intra_class"], 0.5)
    assert math.isclose(metrics["ratio_edge_intra_class_random"], (2 / 5 + 1 / 5 + 0) / 3)
    _, _, ratios2 = knn_graph_metrics(x, y, k=2)
    # 2-NN: class 0 nodes all point inside (6/6); 10 -> {11, 11.4}: 1/2, 11 -> {11.4, 10}: 1/2
    assert np.allclose(ratios2, [1.0, 0.5, 0.0])


def test_nmi_on_planted_blobs_against_sklearn():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(5), 40)
    centers = rng.normal(size=(5, 10)) * 20
    x = (centers[labels] + rng.normal(size=(200, 10))).astype(np.float32)
    got = nmi_core(x, labels, k=5, seed=0)
    assert got["nmi"] > 0.99 and got["ari"] > 0.99
    assert got["cluster_size_min"] == got["cluster_size_max"] == 40
    noise = rng.normal(size=(200, 10)).astype(np.float32)
    assert nmi_core(noise, labels, k=5)["nmi"] < 0.2


def test_partition_metrics_are_sklearns():
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 4, 100), rng.integers(0, 3, 100)
    got = partition_metrics(a, b, 4)
    assert math.isclose(got["nmi"], normalized_mutual_info_score(b, a))
    assert math.isclose(got["ari"], adjusted_rand_score(b, a))
    sizes = np.bincount(a, minlength=4)
    assert math.isclose(got["cluster_size_cv"], sizes.std() / sizes.mean())


def test_whitening_keeps_a_quarter_of_the_dims_at_most():
    """Whitening every direction of a 256-d feature turns noise into signal; capped at d/4."""
    import numpy as np

    from dcbench.clustering.kmeans import pca_whiten
    from dcbench.clustering.preprocess import preprocess_features, whitening_dim
    from dcbench.protocols.nmi import nmi_core

    assert whitening_dim(256, 10_000, 4096) == 256  # the official 4096 -> 256 unchanged
    assert whitening_dim(256, 10_000, 256) == 64
    assert whitening_dim(256, 30, 4096) == 29
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(8), 100)
    signal = rng.normal(size=(8, 32))[labels] * 2 + rng.normal(size=(800, 32))
    x = np.concatenate([signal, rng.normal(size=(800, 224))], axis=1)
    x = x @ rng.normal(size=(256, 256))
    capped = preprocess_features(x, "pca-whiten", 256)
    assert capped.shape == (800, 64)
    everything = pca_whiten(x, dim=255)
    nmi_capped = nmi_core(capped, labels, 8)["nmi"]
    nmi_everything = nmi_core(everything, labels, 8)["nmi"]
    assert nmi_capped > 0.8 and nmi_everything < 0.3
