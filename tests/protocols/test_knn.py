"""k-NN classifier, ratio edge intra-class and NMI cores against independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dcbench.protocols.knn import (
    knn_metrics,
    knn_metrics_and_hits,
    knn_metrics_and_items,
    weighted_knn_scores,
)


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


def test_per_item_hits_match_a_brute_force_vote_and_the_top1():
    rng = np.random.default_rng(3)
    train = rng.normal(size=(100, 8)).astype(np.float32)
    labels = rng.integers(0, 4, size=100)
    test = rng.normal(size=(40, 8)).astype(np.float32)
    test_labels = rng.integers(0, 4, size=40)
    metrics, hits = knn_metrics_and_items(train, labels, test, test_labels, 4, k=10)
    expected = _brute_force_knn(train, labels, test, 4, 10, 0.07).argmax(1) == test_labels
    np.testing.assert_array_equal(hits, expected)
    assert 100 * hits.mean() == pytest.approx(metrics["top1"])


def test_per_item_top5_hits_match_a_brute_force_ranking_and_the_top5():
    """With more than 5 classes knn reports top5: its per-item hits are the label among the
    5 best brute-force vote scores, and average to the row."""
    rng = np.random.default_rng(5)
    train = rng.normal(size=(120, 8)).astype(np.float32)
    labels = rng.integers(0, 9, size=120)
    test = rng.normal(size=(50, 8)).astype(np.float32)
    test_labels = rng.integers(0, 9, size=50)
    metrics, hits = knn_metrics_and_hits(train, labels, test, test_labels, 9, k=10)
    assert set(hits) == {"top1", "top5"}
    votes = _brute_force_knn(train, labels, test, 9, 10, 0.07)
    expected = [t in np.argsort(-v, kind="stable")[:5] for v, t in zip(votes, test_labels,
                                                                       strict=True)]
    np.testing.assert_array_equal(hits["top5"], expected)
    assert 100 * hits["top5"].mean() == pytest.approx(metrics["top5"])
