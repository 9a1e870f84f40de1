"""Average precision of the Oxford buildings protocol (`compute_ap.cpp`, Philbin et al. 2007).

Walk the ranked list skipping junk images; after each kept image, precision = hits / kept
so far and recall = hits / |positives|; AP is the trapezoid sum of precision over the recall
steps, starting from (recall 0, precision 1). Positives never retrieved cost recall.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def oxford_ap(ranked: Sequence[str], positives: set[str] | frozenset[str],
              junk: set[str] | frozenset[str]) -> float:
    """The `compute_ap` value for one ranked list of image names (0 with no positive)."""
    if not positives:
        return 0.0
    kept = np.array([name not in junk for name in ranked], dtype=bool)
    hits = np.array([name in positives for name in ranked], dtype=bool)[kept]
    if hits.size == 0:
        return 0.0
    tp = np.cumsum(hits)
    recall = np.concatenate([[0.0], tp / len(positives)])
    precision = np.concatenate([[1.0], tp / np.arange(1, hits.size + 1)])
    return float(np.sum(np.diff(recall) * (precision[1:] + precision[:-1]) / 2.0))


def retrieval_aps(similarity: np.ndarray, names: Sequence[str],
                  positives: Sequence[frozenset[str]], junk: Sequence[frozenset[str]]
                  ) -> np.ndarray:
    """AP of each query row of a (Q, N) similarity matrix (database ranked by decreasing dot)."""
    names = np.asarray(names)
    order = np.argsort(-similarity, axis=1, kind="stable")
    return np.array([oxford_ap(names[row].tolist(), pos, bad)
                     for row, pos, bad in zip(order, positives, junk, strict=True)])
