"""k-NN graph construction (PIC's graph, the ratio edge intra-class): faiss vs scikit-learn.

dcbench builds the 10-NN graph of N x 256 L2-normalised features with
`dcbench.clustering.pic.knn_search` (exact faiss `IndexFlatL2`); the baseline is scikit-learn
`NearestNeighbors(algorithm="brute")` on the same array. Both are exact, so the neighbour
lists must agree (recall of dcbench's lists against scikit-learn's, ties aside).
"""

from __future__ import annotations

import numpy as np

from benchmarks.common import Row, timeit

K = 10
DIM = 256


def clustered_features(n: int, dim: int = DIM, centers: int = 100, seed: int = 0) -> np.ndarray:
    """L2-normalised float32 rows drawn around `centers` random directions (PCA-whitened
    DeepCluster features look like this: many small clusters on the sphere)."""
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((centers, dim)).astype(np.float32)
    x = means[rng.integers(0, centers, n)] + 0.7 * rng.standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x, dtype=np.float32)


def sklearn_knn(x: np.ndarray, k: int, algorithm: str = "brute") -> np.ndarray:
    """Ids of the k nearest other rows with scikit-learn (query set = index set, self removed)."""
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=k, algorithm=algorithm).fit(x)
    return nn.kneighbors(return_distance=False)  # X=None: each point is not its own neighbour


def neighbour_recall(found: np.ndarray, reference: np.ndarray) -> float:
    """Mean fraction of each row's reference neighbours that `found` also lists."""
    if found.shape != reference.shape:
        raise ValueError(f"neighbour lists differ in shape: {found.shape} vs {reference.shape}")
    hits = (found[:, :, None] == reference[:, None, :]).any(axis=2)
    return float(hits.mean())


def run(quick: bool) -> list[Row]:
    """10-NN graph of N x 256 unit vectors (N = 2,000 quick, 20,000 full)."""
    from dcbench.clustering.pic import knn_search

    n = 2000 if quick else 20_000
    x = clustered_features(n)
    t_dc, (_, ids_dc) = timeit(lambda: knn_search(x, K), repeat=3 if quick else 1,
                               warmup=1 if quick else 0)
    t_sk, ids_sk = timeit(lambda: sklearn_knn(x, K), repeat=3 if quick else 1)
    recall = neighbour_recall(ids_dc, ids_sk)
    return [
        Row(benchmark="knn_graph", what=f"exact {K}-NN graph, {n:,} x {DIM} unit vectors",
            dcbench=t_dc, unit="s", baseline_name="scikit-learn NearestNeighbors(brute)",
            baseline=t_sk,
            notes=f"faiss IndexFlatL2 via pic.knn_search; neighbour agreement {recall:.4f}"),
    ]
