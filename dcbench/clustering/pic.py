"""Power Iteration Clustering (PIC) as in DeepCluster (thesis 3.1, official `--clustering PIC`).

k-NN graph (faiss), Gaussian kernel exp(-d / sigma^2) on squared L2 distances, symmetrised
sparse affinity W = A + A^T, power iteration v <- alpha W^T v + (1 - alpha) / n with L1
normalisation, then clusters = the local maxima of v reached by following each node's
steepest-ascent neighbour. Singletons are redistributed to the cluster of their nearest
non-singleton neighbour, kept, or dropped (label -1), as compared in the thesis's Figure 4.7.
The number of clusters is whatever PIC finds.

`dtype="float32"` runs the kernel and the iteration as the official code does under NumPy >= 2
(NEP 50 keeps its float32 faiss distances float32 throughout). Where nearest-neighbour
affinities are tiny, the update then rounds away and v stays flat, so every point is its own
maximum (all singletons). Under NumPy 1.x, which the 2018 code ran on, the same code computed
W, and after the first step v, in float64 (docs/fidelity.md item 3).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from dcbench.clustering.kmeans import as_float_tensor, flat_l2_index
from dcbench.core.errors import UserError

PicDtype = Literal["float64", "float32"]
PIC_DTYPES: tuple[str, ...] = ("float64", "float32")
SingletonMode = Literal["redistribute", "keep", "drop"]
SINGLETON_MODES: tuple[str, ...] = ("redistribute", "keep", "drop")


def knn_search(x: np.ndarray, k: int, use_gpu: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest other rows of each row: (squared L2 distances, ids), both (N, k).

    Searches k+1 and removes the query itself (even when duplicates put it elsewhere than
    first); rows without themselves in the list drop their farthest hit.
    """
    n = len(x)
    if not 1 <= k < n:
        raise UserError(f"k-NN graph needs 1 <= k < number of samples ({n}), got k={k}")
    index = flat_l2_index(x.shape[1], use_gpu)
    index.add(x)
    dist, ids = index.search(x, k + 1)
    is_self = ids == np.arange(n)[:, None]
    no_self = ~is_self.any(1)
    is_self[no_self, -1] = True
    keep = ~is_self
    return dist[keep].reshape(n, k), ids[keep].reshape(n, k).astype(np.int64)


def affinity_graph(dist: np.ndarray, ids: np.ndarray, sigma: float = 0.2,
                   dtype: PicDtype = "float64") -> sp.csr_matrix:
    """Symmetrised Gaussian-kernel affinity W = A + A^T, A[i, ids[i, j]] = exp(-dist / sigma^2)
    (computed in `dtype`)."""
    n, k = ids.shape
    if dtype == "float32":  # as the official kernel: float32 distance / float32(sigma^2)
        weights = np.exp(-dist.astype(np.float32) / np.float32(sigma**2))
    else:
        weights = np.exp(-np.maximum(dist, 0).astype(np.float64) / sigma**2)
    rows = np.repeat(np.arange(n), k)
    a = sp.csr_matrix((weights.ravel(), (rows, ids.ravel())), shape=(n, n))
    return (a + a.T).tocsr()


def power_iteration(w: sp.csr_matrix, alpha: float = 0.001, iters: int = 200,
                    dtype: PicDtype = "float64") -> np.ndarray:
    """v_0 = 1/n; v <- alpha W^T v + (1 - alpha)/n, L1-normalised each step (in `dtype`)."""
    n = w.shape[0]
    if dtype == "float32":  # the official operations, in their order, all in float32
        w32 = w.astype(np.float32)
        v32 = np.full(n, 1.0 / n, dtype=np.float32)
        step = np.float32((1.0 - alpha) / n)
        for _ in range(iters):
            v32 = np.float32(alpha) * w32.T.dot(v32) + step
            v32 /= v32.sum()
        return v32
    wt = w.T.tocsr()
    v = np.full(n, 1.0 / n)
    for _ in range(iters):
        v = alpha * (wt @ v) + (1.0 - alpha) / n
        v /= np.abs(v).sum()
    return v


def find_maxima_clusters(w: sp.csr_matrix, v: np.ndarray) -> np.ndarray:
    """Each node points to the neighbour j maximising W_ij (v_j - v_i) if positive, else itself;
    following pointers reaches a local maximum; one cluster per maximum (labels 0..C-1 in
    order of the maximum's index)."""
    n = w.shape[0]
    coo = w.tocoo()
    gain = coo.data * (v[coo.col] - v[coo.row])
    pointer = np.arange(n)
    order = np.lexsort((coo.col, gain, coo.row))  # by row, then gain, ties by column
    rows, cols, gains = coo.row[order], coo.col[order], gain[order]
    last = np.flatnonzero(np.r_[rows[1:] != rows[:-1], True])  # best edge of each row
    uphill = gains[last] > 0
    pointer[rows[last][uphill]] = cols[last][uphill]
    # pointers go strictly uphill in v, so there are no cycles: jump until stable
    while True:
        nxt = pointer[pointer]
        if np.array_equal(nxt, pointer):
            break
        pointer = nxt
    _, labels = np.unique(pointer, return_inverse=True)
    return labels.astype(np.int64)


def handle_singletons(
    labels: np.ndarray, neighbours: np.ndarray, mode: SingletonMode = "redistribute"
) -> np.ndarray:
    """Deal with one-member clusters; returns labels renumbered 0..C-1 (-1 = dropped).

    `redistribute`: move each singleton to the cluster of its nearest neighbour (in the order
    of `neighbours[i]`) that is not itself a singleton; it stays alone if all are singletons.
    `keep`: leave them. `drop`: label them -1 (not used for training).
    """
    if mode not in SINGLETON_MODES:
        raise UserError(f"unknown singleton mode {mode!r}; valid: {', '.join(SINGLETON_MODES)}")
    labels = np.asarray(labels, dtype=np.int64).copy()
    counts = np.bincount(labels)
    single = counts[labels] == 1
    if mode == "drop":
        labels[single] = -1
    elif mode == "redistribute":
        original = labels.copy()
        for i in np.flatnonzero(single):
            for j in neighbours[i]:
                if j >= 0 and not single[j]:
                    labels[i] = original[j]
                    break
    out = np.full_like(labels, -1)
    valid = labels >= 0
    _, out[valid] = np.unique(labels[valid], return_inverse=True)
    return out


def run_pic(
    x: Any,
    nnn: int = 5,
    sigma: float = 0.2,
    alpha: float = 0.001,
    iters: int = 200,
    singletons: SingletonMode = "redistribute",
    use_gpu: bool | None = None,
    dtype: PicDtype = "float64",
) -> tuple[np.ndarray, dict[str, Any]]:
    """PIC on the rows of `x` (already PCA-whitened and L2-normalised).

    Returns int64 labels 0..C-1 (-1 for dropped singletons) and an info dict with the number
    of maxima, singletons before handling, final clusters, and loss 0 (PIC has none).
    """
    data = np.ascontiguousarray(as_float_tensor(x).cpu().numpy(), dtype=np.float32)
    if sigma <= 0 or not 0 < alpha < 1 or iters < 1:
        raise UserError("PIC needs sigma > 0, 0 < alpha < 1 and iters >= 1")
    if dtype not in PIC_DTYPES:
        raise UserError(f"unknown PIC dtype {dtype!r}; valid: {', '.join(PIC_DTYPES)}")
    dist, ids = knn_search(data, nnn, use_gpu)
    w = affinity_graph(dist, ids, sigma, dtype)
    v = power_iteration(w, alpha, iters, dtype)
    raw = find_maxima_clusters(w, v)
    n_singletons = int((np.bincount(raw)[raw] == 1).sum())
    labels = handle_singletons(raw, ids, singletons)
    info = {
        "n_maxima": int(raw.max()) + 1,
        "n_singletons": n_singletons,
        "n_clusters": int(labels.max()) + 1 if (labels >= 0).any() else 0,
        "loss": 0.0,
    }
    return labels, info


__all__ = [
    "PIC_DTYPES",
    "SINGLETON_MODES",
    "affinity_graph",
    "find_maxima_clusters",
    "handle_singletons",
    "knn_search",
    "power_iteration",
    "run_pic",
]
