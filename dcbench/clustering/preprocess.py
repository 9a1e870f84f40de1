"""Feature preprocessing shared by the diagnostics protocols (`knn-graph`, `nmi`)."""

from __future__ import annotations

import numpy as np

from dcbench.clustering.kmeans import pca_whiten


def whitening_dim(pca_dim: int, n: int, d: int) -> int:
    """Kept dimensions for PCA-whitening: `pca_dim`, but at most d/4 and fewer than n.

    Whitening equalises every kept direction, so keeping all of them (256 of a 256-d fc7)
    blows the noise directions up to the size of the signal and k-means then finds nothing
    (NMI ~0). DeepCluster keeps 256 of 4096 (1/16); the small built-in model's recipe keeps
    64 of 256. Capping at d/4 keeps the official 4096 -> 256 unchanged.
    """
    return max(1, min(pca_dim, d // 4, n - 1))


def preprocess_features(x: np.ndarray, how: str, pca_dim: int = 256) -> np.ndarray:
    """Feature preprocessing before a graph or k-means: none, row-L2, or PCA-whitening + L2."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if how == "none":
        return x
    if how == "l2":
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    if how == "pca-whiten":

        return np.ascontiguousarray(pca_whiten(x, dim=whitening_dim(pca_dim, *x.shape)))
    raise ValueError(f"unknown preprocessing {how!r}")
