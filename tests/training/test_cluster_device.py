"""Issue 18: the device-resident clustering step (embeddings kept where they were computed,
whitening + k-means + the ratio-edge k-NN there, only labels back), run with device=cpu,
gives the labels, loss and diagnostics of the host path on the same input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from dcbench.clustering.diagnostics import (
    ratio_edge_intra_class,
    ratio_edge_intra_class_device,
)
from dcbench.training.cluster_step import (
    cluster_features,
    cluster_on_device,
    diagnostic_rows,
    label_diagnostics,
)
from dcbench.training.config import TrainConfig
from dcbench.training.embeddings import compact_rows_


def planted(n: int = 300, d: int = 48, k: int = 6, seed: int = 0
            ) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n)
    centres = rng.normal(size=(k, d)) * 3
    return (centres[truth] + rng.normal(size=(n, d))).astype(np.float32), truth


def test_compact_rows_equals_boolean_indexing_without_a_copy() -> None:
    x = torch.arange(40 * 3, dtype=torch.float32).reshape(40, 3)
    valid = torch.ones(40, dtype=torch.bool)
    valid[[0, 5, 6, 39]] = False
    ref = x[valid].clone()
    got = compact_rows_(x, valid)
    assert torch.equal(got, ref) and got.data_ptr() == x.data_ptr()


@pytest.mark.parametrize("clustering", ["kmeans", "pic"])
def test_device_path_labels_equal_the_host_path(clustering: str) -> None:
    feats, truth = planted()
    valid = np.ones(len(feats), dtype=bool)
    valid[[3, 77, 150]] = False  # undecodable images: zero rows, masked out
    feats[~valid] = 0
    config = TrainConfig(k=6, pca_dim=12, clustering=clustering, knn_ratio_k=5)
    used = np.flatnonzero(valid)
    host_labels, host_loss, host_reduced = cluster_features(feats[valid], config, 7, "torch-cpu")
    x = compact_rows_(torch.from_numpy(feats.copy()), torch.from_numpy(valid))
    labels, loss, reduced = cluster_on_device(x, config, 7, "torch-cpu")
    np.testing.assert_array_equal(labels, host_labels)
    assert loss == pytest.approx(host_loss, rel=1e-6)
    assert isinstance(reduced, torch.Tensor)
    rows = diagnostic_rows(used, truth, config, 0, 6)
    full = np.full(len(feats), -1)
    full[used] = labels
    host = label_diagnostics(host_reduced[rows], rows, used, full, truth, config)
    dev = label_diagnostics(reduced[torch.from_numpy(rows)], rows, used, full, truth, config)
    assert dev == pytest.approx(host)


def test_bf16_storage_clusters_like_fp32() -> None:
    feats, _ = planted(seed=1)
    config = TrainConfig(k=6, pca_dim=12, knn_ratio_k=5)
    ref, _, _ = cluster_on_device(torch.from_numpy(feats), config, 3, "torch-cpu")
    got, _, _ = cluster_on_device(torch.from_numpy(feats).bfloat16(), config, 3, "torch-cpu")
    assert adjusted_rand_score(ref, got) > 0.99


def test_device_ratio_edge_equals_the_faiss_one() -> None:
    feats, truth = planted(n=200, seed=2)
    truth[::7] = -1  # unlabelled rows are not graph nodes
    ref = ratio_edge_intra_class(feats, truth, k=10)
    assert ratio_edge_intra_class_device(torch.from_numpy(feats), truth, k=10) == pytest.approx(
        ref, abs=1e-12)
