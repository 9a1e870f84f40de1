"""k-means in plain torch: the semantics of `run_kmeans` (faiss Clustering) on any device.

faiss has no CUDA 13 build, so on a modern GPU the faiss path falls back to the CPU (23.8 s
for 50k x 256, k=10,000 on 16 cores, against 0.64 s for this code on an H200; issue 15).
This follows faiss's `Clustering::train` step by step, written from its description:

- seeding: the first k rows of a seeded random permutation are the initial centroids;
- `niter` iterations of: assign every row to its nearest centroid (squared L2, exact),
  record the objective (sum of squared distances), recompute centroids as means, and split
  a random big cluster into any empty one (the donor drawn with probability proportional to
  its size - 1, centroid copied with a symmetric 1/1024 perturbation, faiss's rule);
- a final assignment with the last centroids, then `fill_empty_clusters` (thesis 3.2), so
  every cluster is non-empty on return; the loss is the last iteration's objective.

Assignment is chunked (rows x k distance blocks of about `budget` bytes), so N = 1.28M and
k = 10,000 fit in a few GiB. Per-cluster sums are accumulated in float64 (centroids are
float32), which makes the result independent of how rows are split across chunks or ranks
in all but pathological ties; `dcbench.clustering.sharded` reuses these steps with sums and
counts all-reduced over torchrun ranks.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from dcbench.clustering.kmeans import as_float_tensor, count_resplit, fill_empty_clusters
from dcbench.core.errors import UserError

SPLIT_EPS = 1.0 / 1024.0
_BLOCK_BYTES = 256 << 20  # one (rows x k) float32 distance block


def chunk_rows(k: int, budget: int = _BLOCK_BYTES) -> int:
    """Rows per assignment block so that a (rows x k) float32 block takes about `budget` bytes."""
    return max(256, budget // (4 * max(k, 1)))


@torch.no_grad()
def assign(x: torch.Tensor, centroids: torch.Tensor, rows: int | None = None
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centroid of every row: (int64 labels, float32 squared distances), chunked.

    Distances are ||x||^2 - 2 x.c + ||c||^2 like faiss's BLAS path (clamped at 0)."""
    rows = rows or chunk_rows(len(centroids))
    c_sq = (centroids * centroids).sum(1)
    labels = torch.empty(len(x), dtype=torch.int64, device=x.device)
    dists = torch.empty(len(x), dtype=torch.float32, device=x.device)
    for s in range(0, len(x), rows):
        xb = x[s : s + rows]
        block = torch.addmm(c_sq.unsqueeze(0), xb, centroids.T, alpha=-2.0)
        best, idx = block.min(1)
        labels[s : s + rows] = idx
        dists[s : s + rows] = (best + (xb * xb).sum(1)).clamp_min_(0)
    return labels, dists


def cluster_sums(x: torch.Tensor, labels: torch.Tensor, k: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-cluster float64 sums (k x d) and int64 counts (k) of the rows of `x`."""
    sums = torch.zeros(k, x.shape[1], dtype=torch.float64, device=x.device)
    d = x.shape[1]
    for s in range(0, len(x), 65536):  # scatter_add_: ~15x faster than index_add_ in float64
        lab = labels[s : s + 65536, None].expand(-1, d)
        sums.scatter_add_(0, lab, x[s : s + 65536].double())
    counts = torch.bincount(labels, minlength=k)
    return sums, counts


def update_centroids(sums: torch.Tensor, counts: torch.Tensor, rng: np.random.Generator,
                     stats: dict[str, int] | None = None) -> torch.Tensor:
    """Means of the non-empty clusters; empty ones get a split of a random big cluster
    (counted in `stats["empty_resplit"]` when given)."""
    counts_f = counts.to(torch.float64).clamp_min(1).unsqueeze(1)
    new = (sums / counts_f).to(torch.float32)
    empty = (counts == 0).cpu().numpy()
    if empty.any():
        count_resplit(stats, int(empty.sum()))
        new = split_empty(new, counts.cpu().numpy().copy(), rng)
    return new


def split_empty(centroids: torch.Tensor, counts: np.ndarray, rng: np.random.Generator
                ) -> torch.Tensor:
    """faiss's split rule: for each empty cluster, a donor drawn with probability
    proportional to (size - 1) gives a copy of its centroid, the two moved apart by a
    symmetric relative perturbation of SPLIT_EPS (+ on even dims for the new one); the
    donor's count is halved (an assumed even split)."""
    k, d = centroids.shape
    sign = torch.ones(d, dtype=centroids.dtype, device=centroids.device)
    sign[1::2] = -1
    for ci in np.flatnonzero(counts == 0):
        weights = np.maximum(counts - 1, 0).astype(np.float64)
        if weights.sum() <= 0:
            break
        cj = int(rng.choice(k, p=weights / weights.sum()))
        centroids[ci] = centroids[cj] * (1 + SPLIT_EPS * sign)
        centroids[cj] = centroids[cj] * (1 - SPLIT_EPS * sign)
        counts[ci] = counts[cj] // 2
        counts[cj] -= counts[ci]
    return centroids


def initial_ids(n: int, k: int, seed: int) -> np.ndarray:
    """Row ids of the initial centroids: the first k of a seeded permutation of n."""
    return np.random.default_rng([int(seed), 0x6B6D]).permutation(n)[:k]


Reduce = Callable[[torch.Tensor], torch.Tensor]


def _identity(t: torch.Tensor) -> torch.Tensor:
    return t


@torch.no_grad()
def lloyd(x: torch.Tensor, init: torch.Tensor, niter: int, seed: int,
          all_reduce: Reduce = _identity, stats: dict[str, int] | None = None
          ) -> tuple[torch.Tensor, torch.Tensor, float]:
    """The faiss iterations from `init` centroids: (local labels, centroids, last objective).

    `all_reduce` sums a tensor over ranks (identity in one process); every rank then holds
    the same sums, counts and objective, so the centroids stay identical across ranks."""
    rng = np.random.default_rng([int(seed), 0x5EED])
    k = len(init)
    centroids = init.clone()
    obj = 0.0
    for _ in range(niter):
        labels, dists = assign(x, centroids)
        obj = float(all_reduce(dists.double().sum().reshape(1)).item())
        sums, counts = cluster_sums(x, labels, k)
        sums, counts = all_reduce(sums), all_reduce(counts)
        centroids = update_centroids(sums, counts, rng, stats)
    labels, _ = assign(x, centroids)
    return labels, centroids, obj


def torch_kmeans(x: np.ndarray | torch.Tensor, k: int, niter: int = 20, seed: int = 0,
                 device: torch.device | str | None = None,
                 stats: dict[str, int] | None = None) -> tuple[np.ndarray, float]:
    """k-means on all rows with `run_kmeans` semantics; returns (int64 labels, final loss).

    Runs where `x` lives unless `device` is given (a CPU array goes to the GPU only when
    asked). Every one of the `k` clusters is non-empty on return."""
    t = as_float_tensor(x)
    if device is not None:
        t = t.to(device)
    n = len(t)
    if not 1 <= k <= n:
        raise UserError(f"k-means needs 1 <= k <= number of samples ({n}), got k={k}")
    t = t.contiguous()
    init = t[torch.from_numpy(initial_ids(n, k, seed)).to(t.device)]
    labels, _, obj = lloyd(t, init, niter, seed, stats=stats)
    return fill_empty_clusters(labels.cpu().numpy(), k, seed=seed, stats=stats), obj


__all__ = ["assign", "chunk_rows", "cluster_sums", "initial_ids", "lloyd", "split_empty",
           "torch_kmeans", "update_centroids"]
