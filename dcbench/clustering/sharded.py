"""Clustering of features that stay sharded over torchrun ranks (issue 15, item 2).

Each rank holds the rows it embedded. PCA-whitening: the mean and the scatter matrix are
all-reduced (float64), rank 0 takes the eigenpairs and broadcasts the projection. k-means:
the initial centroids are the rows of a seeded global permutation (each rank fills in the
ones it owns, one all-reduce), and each iteration all-reduces the per-cluster float64 sums,
the counts and the objective, so every rank holds the same centroids. Only int64 labels are
gathered. PIC needs the whole k-NN graph, so it runs on rank 0 on all-gathered reduced
(whitened, `pca_dim`-d, e.g. 256) features, never the 4096-d ones.

Against one process on the same rows: the sums are float64 (exact to ~1e-16 relative), but
the float32 chunk products of the scatter matrix are grouped by rank, so the whitened
features differ in the last bits and labels agree except for rows nearly tied between two
centroids (ARI >= 0.99 in the test, typically identical).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from dcbench.clustering.kmeans import (
    as_float_tensor,
    fill_empty_clusters,
    l2_normalize,
    scatter_matrix,
    whitening_from_moments,
)
from dcbench.clustering.pic import run_pic
from dcbench.clustering.torch_kmeans import initial_ids, lloyd
from dcbench.core.distributed import (
    DistInfo,
    all_reduce_sum,
    broadcast_array,
    broadcast_tensor,
    gather_varying,
)
from dcbench.core.errors import UserError


def total_rows(local: torch.Tensor, info: DistInfo) -> tuple[int, int]:
    """(rows over all ranks, global index of this rank's first row) (rank order)."""
    sizes = gather_varying(torch.tensor([len(local)], dtype=torch.int64, device=local.device),
                           info).cpu()
    return int(sizes.sum()), int(sizes[: info.rank].sum())


def sharded_whiten(local: np.ndarray | torch.Tensor, dim: int, info: DistInfo) -> torch.Tensor:
    """PCA-whiten to `dim` + L2 the rows of every rank together; returns this rank's rows."""
    t = as_float_tensor(local)
    n, _ = total_rows(t, info)
    if n < 2 or not 1 <= dim <= t.shape[1]:
        raise UserError(f"PCA needs >= 2 samples and 1 <= dim <= {t.shape[1]}, got n={n}, {dim}")
    dim = min(dim, n - 1)
    mean = all_reduce_sum(t.double().sum(0), info) / n
    scatter = all_reduce_sum(scatter_matrix(t, mean), info)
    if info.is_main:  # one eigendecomposition, the same projection everywhere
        projection = whitening_from_moments(mean, scatter.cpu() / (n - 1), dim).projection
    else:
        projection = torch.empty(t.shape[1], dim)
    projection = broadcast_tensor(projection.to(t.device).contiguous(), info)
    return l2_normalize((t - mean.to(t.device, torch.float32)) @ projection)


def sharded_kmeans(local: torch.Tensor, k: int, niter: int, seed: int, info: DistInfo,
                   stats: dict[str, int] | None = None) -> tuple[np.ndarray, float]:
    """k-means over the rows of all ranks: (global int64 labels in rank order, loss), the
    same on every rank, with `torch_kmeans`'s semantics (every cluster non-empty)."""
    n, offset = total_rows(local, info)
    if not 1 <= k <= n:
        raise UserError(f"k-means needs 1 <= k <= number of samples ({n}), got k={k}")
    ids = torch.from_numpy(initial_ids(n, k, seed)).to(local.device)
    init = torch.zeros(k, local.shape[1], dtype=torch.float32, device=local.device)
    mine = (ids >= offset) & (ids < offset + len(local))
    init[mine] = local[ids[mine] - offset]
    init = all_reduce_sum(init, info)  # each row comes from exactly one rank: exact
    labels, _, obj = lloyd(local, init, niter, seed, lambda t: all_reduce_sum(t, info), stats)
    everyone = gather_varying(labels, info).cpu().numpy()
    return fill_empty_clusters(everyone, k, seed=seed, stats=stats), obj


def sharded_pic(local: torch.Tensor, info: DistInfo, device: torch.device, **pic: Any
                ) -> tuple[np.ndarray, dict[str, Any]]:
    """PIC on rank 0 over the all-gathered reduced rows; labels broadcast (int64)."""
    everyone = gather_varying(local, info)
    info_out: dict[str, Any] = {}
    labels = None
    if info.is_main:
        labels, info_out = run_pic(everyone, **pic)
    return broadcast_array(labels, info, device), info_out


__all__ = ["sharded_kmeans", "sharded_pic", "sharded_whiten", "total_rows"]
