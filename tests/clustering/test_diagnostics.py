"""Diagnostics against hand-worked values and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import normalized_mutual_info_score

from dcbench.clustering.diagnostics import (
    assignment_nmi,
    cluster_size_stats,
    ratio_edge_intra_class,
    ratio_edge_intra_class_per_class,
)
from dcbench.core.errors import UserError


def test_ratio_edge_intra_class_by_hand() -> None:
    # points on a line: class 0 at 0, 1, 2 ; class 1 at 2.6, 10, 11. With k=1:
    # 0->1 (same), 1->0 or 2 (tie at distance 1, both class 0), 2->2.6 (other)
    # 2.6->2 (other), 10->11 (same), 11->10 (same): class 0: 2/3, class 1: 2/3
    x = np.array([[0.0], [1.0], [2.0], [2.6], [10.0], [11.0]], dtype=np.float32)
    y = np.array([0, 0, 0, 1, 1, 1])
    per = ratio_edge_intra_class_per_class(x, y, k=1)
    assert per == pytest.approx({0: 2 / 3, 1: 2 / 3})
    # k=2: 0->{1,2} 2/2, 1->{0,2} 2/2, 2->{2.6,1} 1/2 ; 2.6->{2,1} 0/2, 10->{11,2.6} 2/2,
    # 11->{10,2.6} 2/2 -> class 0: 5/6, class 1: 4/6, mean 3/4
    assert ratio_edge_intra_class(x, y, k=2) == pytest.approx(3 / 4)


def test_ratio_ignores_unlabelled_and_refuses_tiny_sets() -> None:
    x = np.array([[0.0], [0.1], [5.0], [5.1], [0.05]], dtype=np.float32)
    y = np.array([0, 0, 1, 1, -1])
    assert ratio_edge_intra_class(x, y, k=1) == pytest.approx(1.0)
    with pytest.raises(UserError):
        ratio_edge_intra_class(x, y, k=4)


def test_assignment_nmi_matches_sklearn_and_skips_unassigned() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 5, 200), rng.integers(0, 7, 200)
    assert assignment_nmi(a, b) == pytest.approx(normalized_mutual_info_score(a, b))
    assert assignment_nmi(a, (a + 3) % 5) == pytest.approx(1.0)  # renamed clusters
    b2 = b.copy()
    b2[:50] = -1
    assert assignment_nmi(a, b2) == pytest.approx(normalized_mutual_info_score(a[50:], b[50:]))
    assert assignment_nmi(np.array([-1, -1]), np.array([0, 1])) is None


def test_cluster_size_stats_by_hand() -> None:
    stats = cluster_size_stats(np.array([0, 0, 0, 2, 2, 5, -1]))
    assert stats["n_clusters"] == 3
    assert (stats["size_min"], stats["size_max"], stats["size_median"]) == (1, 3, 2.0)
    assert stats["n_singletons"] == 1 and stats["n_unassigned"] == 1
    assert stats["largest_share"] == pytest.approx(0.5)


def _nmi_by_hand(a: np.ndarray, b: np.ndarray, average: str) -> float:
    """MI / mean(H(a), H(b)) from the contingency table (natural logs)."""
    joint = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(joint, (a, b), 1)
    p = joint / joint.sum()
    pa, pb = p.sum(1), p.sum(0)
    nz = p > 0
    mi = (p[nz] * np.log(p[nz] / np.outer(pa, pb)[nz])).sum()
    ha, hb = -(pa[pa > 0] * np.log(pa[pa > 0])).sum(), -(pb[pb > 0] * np.log(pb[pb > 0])).sum()
    return mi / (np.sqrt(ha * hb) if average == "geometric" else (ha + hb) / 2)


@pytest.mark.parametrize("average", ["arithmetic", "geometric"])
def test_assignment_nmi_average_matches_the_formula(average: str) -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 30, 2000)
    b = np.where(rng.random(2000) < 0.6, a % 12, rng.integers(0, 12, 2000))  # unequal entropies
    got = assignment_nmi(a, b, average)
    assert got == pytest.approx(_nmi_by_hand(a, b, average), rel=1e-10)
    other = "geometric" if average == "arithmetic" else "arithmetic"
    assert abs(got - _nmi_by_hand(a, b, other)) > 1e-3  # the switch matters here
