"""Per-epoch diagnostics of DeepCluster (thesis 4.1, official `--verbose` log).

Pure functions from arrays to numbers: NMI between two assignments, cluster-size
statistics, and the thesis's *ratio edge intra-class* of the k-NN graph. The protocols'
`knn-graph` evaluation imports `ratio_edge_intra_class` from here, so there is one
definition of the metric.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import normalized_mutual_info_score

from dcbench.clustering.backend import knn_search_device
from dcbench.clustering.kmeans import as_float_tensor
from dcbench.clustering.pic import knn_search
from dcbench.core.errors import UserError


def assignment_nmi(a: np.ndarray, b: np.ndarray, average: str = "arithmetic") -> float | None:
    """NMI between two labelings of the same samples, over samples labelled (>= 0) in both.

    `average`: sklearn's normaliser, "arithmetic" (sklearn >= 0.22) or "geometric" (the
    sklearn the 2018 code ran). Returns None when fewer than 2 samples are labelled in both
    (nothing to compare).
    """
    a, b = np.asarray(a).reshape(-1), np.asarray(b).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"assignments differ in length: {a.shape} vs {b.shape}")
    both = (a >= 0) & (b >= 0)
    if both.sum() < 2:
        return None
    return float(normalized_mutual_info_score(a[both], b[both], average_method=average))


def cluster_size_stats(labels: np.ndarray) -> dict[str, float | int]:
    """Sizes of the non-empty clusters (labels < 0 are unassigned and not counted)."""
    labels = np.asarray(labels).reshape(-1)
    assigned = labels[labels >= 0]
    sizes = np.bincount(assigned) if assigned.size else np.zeros(0, dtype=np.int64)
    sizes = sizes[sizes > 0]
    if sizes.size == 0:
        return {"n_clusters": 0, "n_unassigned": int((labels < 0).sum())}
    return {
        "n_clusters": int(sizes.size),
        "size_min": int(sizes.min()),
        "size_median": float(np.median(sizes)),
        "size_mean": float(sizes.mean()),
        "size_max": int(sizes.max()),
        "n_singletons": int((sizes == 1).sum()),
        "largest_share": float(sizes.max() / sizes.sum()),
        "n_unassigned": int((labels < 0).sum()),
    }


def knn_ids(features: np.ndarray, k: int) -> np.ndarray:
    """Ids of the k nearest other samples (Euclidean, exact, faiss) for each row."""

    data = np.ascontiguousarray(as_float_tensor(features).cpu().numpy(), dtype=np.float32)
    return knn_search(data, k)[1]


def ratio_edge_intra_class_per_class(
    features: np.ndarray, labels: np.ndarray, k: int = 10
) -> dict[int, float]:
    """For each class C: #{edges (i, j) of the k-NN graph with i, j in C} / #{edges from C}.

    Samples with label < 0 are not graph nodes (neither sources nor neighbours).
    """
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(features):
        raise UserError(f"{len(features)} feature rows but {len(labels)} labels")
    keep = labels >= 0
    feats, labs = np.asarray(features)[keep], labels[keep]
    if len(labs) <= k:
        raise UserError(f"ratio edge intra-class with k={k} needs more than {k} labelled samples")
    neighbours = knn_ids(feats, k)
    same = labs[neighbours] == labs[:, None]
    classes = np.unique(labs)
    per_class = np.bincount(labs, weights=same.sum(1), minlength=classes.max() + 1)
    edges = np.bincount(labs, minlength=classes.max() + 1) * k
    return {int(c): float(per_class[c] / edges[c]) for c in classes}


def ratio_edge_intra_class(features: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    """Thesis 4.1: the ratio edge intra-class of the k-NN graph, averaged over classes."""
    per_class = ratio_edge_intra_class_per_class(features, labels, k)
    return float(np.mean(list(per_class.values())))


@torch.no_grad()
def ratio_edge_intra_class_device(features: torch.Tensor, labels: np.ndarray, k: int = 10
                                  ) -> float:
    """`ratio_edge_intra_class` computed where `features` live (the exact torch k-NN, then
    the per-class ratios on the device): one float comes back, no feature row."""
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(features):
        raise UserError(f"{len(features)} feature rows but {len(labels)} labels")
    keep = np.flatnonzero(labels >= 0)
    if len(keep) <= k:
        raise UserError(f"ratio edge intra-class with k={k} needs more than {k} labelled samples")
    dev = features.device
    labs = torch.from_numpy(labels[keep]).to(dev)
    feats = features if len(keep) == len(labels) else features[torch.from_numpy(keep).to(dev)]
    _, neighbours = knn_search_device(feats, k)
    same = (labs[neighbours] == labs[:, None]).sum(1).double()
    size = int(labs.max()) + 1
    per_class = torch.zeros(size, dtype=torch.float64, device=dev).index_add_(0, labs, same)
    edges = torch.bincount(labs, minlength=size).double() * k
    present = edges > 0
    return float((per_class[present] / edges[present]).mean())


__all__ = [
    "assignment_nmi",
    "cluster_size_stats",
    "knn_ids",
    "ratio_edge_intra_class",
    "ratio_edge_intra_class_device",
    "ratio_edge_intra_class_per_class",
]
