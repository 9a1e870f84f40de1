"""Pure metric functions shared by the protocols (tensors/arrays in, numbers out)."""

from __future__ import annotations

import numpy as np
import torch


def topk_correct(scores: torch.Tensor, labels: torch.Tensor, ks: tuple[int, ...] = (1, 5)
                 ) -> dict[int, int]:
    """Number of samples whose label is among the top-k scores, for each k (k capped at C)."""
    if scores.shape[0] == 0:
        return {k: 0 for k in ks}
    hits = top_hits(scores, labels, max(ks))
    return {k: int(hits[:, : min(k, hits.shape[1])].any(dim=1).sum()) for k in ks}


def top_hits(scores: torch.Tensor, labels: torch.Tensor, k: int = 5) -> torch.Tensor:
    """(N, min(k, C)) bool: column j says the label is the j-th best score. Column 0 is the
    per-item top-1 correctness behind `top1` (the same tie rule: torch's topk)."""
    top = scores.topk(min(k, scores.shape[1]), dim=1).indices
    return top.eq(labels.view(-1, 1))


def topk_accuracy(scores: torch.Tensor, labels: torch.Tensor, ks: tuple[int, ...] = (1, 5)
                  ) -> dict[str, float]:
    """Top-k accuracy in percent as {'top1': .., 'top5': ..}; top-k is omitted when k >= C."""
    return hits_accuracy(top_hits(scores, labels, max(ks)), scores.shape[1], ks)


def hits_accuracy(hits: torch.Tensor, n_classes: int, ks: tuple[int, ...] = (1, 5)
                  ) -> dict[str, float]:
    """`topk_accuracy` from `top_hits` rows (e.g. gathered from several processes)."""
    n = max(int(hits.shape[0]), 1)
    counts = {k: int(hits[:, : min(k, hits.shape[1])].any(dim=1).sum()) for k in ks}
    return {f"top{k}": 100.0 * counts[k] / n for k in ks if k == 1 or k < n_classes}


def average_crops(logits: torch.Tensor) -> torch.Tensor:
    """10-crop testing: softmax per crop, averaged over crops. (N, n_crops, C) -> (N, C)."""
    if logits.dim() != 3:
        raise ValueError(f"expected (N, n_crops, C) logits, got shape {tuple(logits.shape)}")
    return logits.softmax(dim=-1).mean(dim=1)


def random_graph_ratio(labels: np.ndarray) -> float:
    """Expected mean-over-classes ratio edge intra-class of a random k-NN graph.

    A random neighbour of a node in class c is in c with probability (n_c - 1) / (N - 1);
    the mean over classes is the reference for `ratio_edge_intra_class`. For balanced
    classes it equals sum_c (n_c/N) (n_c-1)/(N-1), i.e. ~1/C (0.4% for 250 classes).
    """
    labels = np.asarray(labels)
    n = labels.shape[0]
    if n < 2:
        raise ValueError("need at least two samples")
    _, counts = np.unique(labels, return_counts=True)
    return float(np.mean((counts - 1) / (n - 1)))


def mean_std(values: list[float] | np.ndarray) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value)."""
    arr = np.asarray(values, dtype=np.float64)
    std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return float(arr.mean()), std
