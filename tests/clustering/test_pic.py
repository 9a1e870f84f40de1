"""PIC against hand-built graphs, a dense re-implementation of its update, and planted blobs."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import normalized_mutual_info_score

from dcbench.clustering.pic import (
    affinity_graph,
    find_maxima_clusters,
    handle_singletons,
    knn_search,
    power_iteration,
    run_pic,
)
from dcbench.core.errors import UserError


def hand_graph() -> sp.csr_matrix:
    """Star 0-(1,2,3), star 4-(5,6), and a weak bridge 3-5 (weight 0.1)."""
    edges = {(0, 1): 1.0, (0, 2): 1.0, (0, 3): 1.0, (4, 5): 1.0, (4, 6): 1.0, (3, 5): 0.1}
    w = np.zeros((7, 7))
    for (i, j), value in edges.items():
        w[i, j] = w[j, i] = value
    return sp.csr_matrix(w)


def test_power_iteration_matches_dense_formula() -> None:
    w = hand_graph()
    dense = w.toarray()
    v = np.full(7, 1 / 7)
    for _ in range(3):
        v = 0.3 * dense.T @ v + 0.7 / 7
        v = v / v.sum()
    np.testing.assert_allclose(power_iteration(w, alpha=0.3, iters=3), v, rtol=1e-12)


def test_maxima_clusters_on_hand_graph() -> None:
    # degrees: 0:3, 1:1, 2:1, 3:1.1, 4:2, 5:1.1, 6:1, so v ~ 1 + alpha * degree peaks at the
    # star centres 0 and 4; 3 climbs to 0 (its other neighbour 5 has the same v), 5 to 4.
    w = hand_graph()
    v = power_iteration(w, alpha=0.001, iters=200)
    labels = find_maxima_clusters(w, v)
    assert labels.tolist() == [0, 0, 0, 0, 1, 1, 1]


def test_steepest_ascent_follows_weight_times_gain() -> None:
    # node 0 has neighbours 1 (v higher by 0.1, weight 1) and 2 (v higher by 0.3, weight 0.5):
    # gains 0.1 vs 0.15, so 0 follows 2; 1 and 2 are maxima (no uphill neighbour).
    w = sp.csr_matrix(np.array([[0, 1, 0.5], [1, 0, 0], [0.5, 0, 0]]))
    labels = find_maxima_clusters(w, np.array([0.2, 0.3, 0.5]))
    assert labels.tolist() == [1, 0, 1]


def test_singleton_modes_by_hand() -> None:
    labels = np.array([0, 0, 1, 2, 2, 3])  # clusters 1 and 3 are singletons
    neighbours = np.array([[1, 2], [0, 2], [5, 3], [4, 0], [3, 0], [2, 4]])
    # 2: nearest is 5 (a singleton) then 3 -> cluster 2; 5: nearest is 2 (singleton), then 4
    assert handle_singletons(labels, neighbours, "redistribute").tolist() == [0, 0, 1, 1, 1, 1]
    assert handle_singletons(labels, neighbours, "keep").tolist() == [0, 0, 1, 2, 2, 3]
    assert handle_singletons(labels, neighbours, "drop").tolist() == [0, 0, -1, 1, 1, -1]
    only_singles = np.array([[1], [0]])
    assert handle_singletons(np.array([0, 1]), only_singles, "redistribute").tolist() == [0, 1]
    with pytest.raises(UserError, match="singleton mode"):
        handle_singletons(labels, neighbours, "merge")  # type: ignore[arg-type]


def test_knn_graph_excludes_self_and_is_symmetric() -> None:
    x = np.array([[0.0], [0.0], [1.0], [3.0]], dtype=np.float32)  # 0 and 1 are duplicates
    dist, ids = knn_search(x, 2)
    assert all(i not in row for i, row in enumerate(ids))
    assert ids[3].tolist() == [2, 0] or ids[3].tolist() == [2, 1]
    w = affinity_graph(dist, ids, sigma=1.0)
    assert (abs(w - w.T)).max() == 0
    # 2's neighbours are 0/1 (d=1); 3 also points at 2 with d=4: W[2,3] = exp(-4)
    assert w[2, 3] == pytest.approx(np.exp(-4.0))


def test_pic_recovers_planted_blobs() -> None:
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((6, 8)) * 10
    truth = rng.integers(0, 6, 1200)
    x = (centers[truth] + rng.standard_normal((1200, 8))).astype(np.float32)
    labels, info = run_pic(x, nnn=20, sigma=3.0, alpha=0.001, iters=200)
    assert labels.dtype == np.int64 and labels.min() == 0
    assert info["n_clusters"] == labels.max() + 1
    assert normalized_mutual_info_score(truth, labels) > 0.9


def test_pic_drop_mode_marks_singletons_unassigned() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((300, 16)).astype(np.float32)
    kept, info = run_pic(x, singletons="keep")
    dropped, _ = run_pic(x, singletons="drop")
    sizes = np.bincount(kept)
    assert info["n_singletons"] == int((sizes == 1).sum()) > 0
    assert int((dropped < 0).sum()) == info["n_singletons"]
    redistributed, _ = run_pic(x, singletons="redistribute")
    assert (np.bincount(redistributed) == 1).sum() <= info["n_singletons"]


# --- dtype="float32": against a plain port of the official run_pic / find_maxima_cluster ----
# (facebookresearch/deepcluster@2d1927e clustering.py, re-written here; the float32 casts are
# what NumPy >= 2 does to that code, spelled out so the port does not depend on the version)


def _port_official_pic(ids: np.ndarray, dist: np.ndarray, dtype: str, sigma: float = 0.2,
                       alpha: float = 0.001, iters: int = 200) -> np.ndarray:
    n, k = ids.shape
    indptr = k * np.arange(n + 1)
    kernel = np.exp(-dist.astype(dtype) / np.asarray(sigma**2, dtype=dtype))
    a = sp.csr_matrix((kernel.reshape(-1), ids.reshape(-1), indptr), shape=(n, n))
    w = a + a.transpose()
    v = (np.ones(n) / n).astype(dtype)
    for _ in range(iters):
        vnext = np.zeros(n, dtype=dtype) + w.transpose().dot(v)
        vnext = np.asarray(alpha, dtype=dtype) * vnext + np.asarray((1 - alpha) / n, dtype=dtype)
        vnext /= vnext.sum()
        v = vnext
    pointers = list(range(n))
    for i in range(n):
        best = 0
        for pos in range(w.indptr[i], w.indptr[i + 1]):
            j = w.indices[pos]
            gain = w.data[pos] * (v[j] - v[i])
            if gain > best:
                best, pointers[i] = gain, j
    roots = {i: c for c, i in enumerate(i for i in range(n) if pointers[i] == i)}
    assign = []
    for i in range(n):
        node = i
        while pointers[node] != node:
            node = pointers[node]
        assign.append(roots[node])
    return np.array(assign)


def _far_blobs(n: int, d: int, spread: float, seed: int) -> np.ndarray:
    """L2-normalised blobs (n/20 centres); larger spread -> smaller neighbour affinities."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n // 20, d))
    x = centres[rng.integers(0, len(centres), n)] + spread * rng.standard_normal((n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


@pytest.mark.parametrize(("spread", "dtype"), [(0.3, "float32"), (0.8, "float32"),
                                                (1.5, "float32"), (0.8, "float64")])
def test_dtype_matches_a_port_of_the_official_iteration(spread: float, dtype: str) -> None:
    x = _far_blobs(600, 64, spread, seed=1)
    dist, ids = knn_search(x, 5)
    w = affinity_graph(dist, ids, 0.2, dtype)
    labels = find_maxima_clusters(w, power_iteration(w, 0.001, 200, dtype))
    assert _same_partition(labels, _port_official_pic(ids, dist, dtype))


def test_float32_collapses_to_singletons_where_affinities_are_tiny() -> None:
    x = _far_blobs(1000, 64, 1.5, seed=1)  # neighbour squared distances ~1.1: W ~ 1e-12
    _, info32 = run_pic(x, singletons="keep", dtype="float32")
    _, info64 = run_pic(x, singletons="keep", dtype="float64")
    assert info32["n_maxima"] == info32["n_singletons"] == 1000  # every point alone
    assert info64["n_maxima"] < 200
    near = _far_blobs(1000, 64, 0.3, seed=1)  # large affinities: both dtypes agree
    a32, _ = run_pic(near, singletons="keep", dtype="float32")
    a64, _ = run_pic(near, singletons="keep", dtype="float64")
    assert normalized_mutual_info_score(a32, a64) > 0.99
    with pytest.raises(UserError, match="dtype"):
        run_pic(near, dtype="float16")
