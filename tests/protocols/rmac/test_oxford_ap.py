"""Oxford `compute_ap` rule vs an independent loop written from the C++ reference."""

from __future__ import annotations

import numpy as np
import pytest

from dcbench.protocols.rmac.oxford_ap import oxford_ap, retrieval_aps


def reference_compute_ap(pos: set[str], amb: set[str], ranked: list[str]) -> float:
    """Line by line the Oxford `compute_ap.cpp` loop (trapezoid rule, junk skipped)."""
    old_recall, old_precision, ap = 0.0, 1.0, 0.0
    intersect, j = 0, 0
    for name in ranked:
        if name in amb:
            continue
        if name in pos:
            intersect += 1
        recall = intersect / float(len(pos))
        precision = intersect / (j + 1.0)
        ap += (recall - old_recall) * ((old_precision + precision) / 2.0)
        old_recall, old_precision = recall, precision
        j += 1
    return ap


def test_hand_built_case_by_hand_and_reference():
    ranked = ["a", "junk1", "x", "b", "y", "c"]
    pos, junk = {"a", "b", "c", "d"}, {"junk1"}
    # kept list a x b y c: (r, p) steps (1/4, 1), (1/4, 1/2), (2/4, 2/3), (2/4, 1/2), (3/4, 3/5)
    by_hand = 0.25 * (1 + 1) / 2 + 0.25 * (0.5 + 2 / 3) / 2 + 0.25 * (0.5 + 0.6) / 2
    assert oxford_ap(ranked, pos, junk) == pytest.approx(by_hand)
    assert oxford_ap(ranked, pos, junk) == pytest.approx(reference_compute_ap(pos, junk, ranked))


def test_random_lists_match_reference():
    rng = np.random.default_rng(0)
    for _ in range(50):
        names = [f"im{i}" for i in range(int(rng.integers(5, 40)))]
        ranked = list(rng.permutation(names))
        pos = set(rng.choice(names, int(rng.integers(1, 6)), replace=False))
        junk = set(rng.choice(sorted(set(names) - pos), int(rng.integers(0, 4)), replace=False))
        if rng.random() < 0.3:
            pos.add("never_retrieved")
        expected = reference_compute_ap(pos, junk, ranked)
        assert oxford_ap(ranked, pos, junk) == pytest.approx(expected)


def test_perfect_ranking_and_similarity_matrix():
    names = ["p1", "p2", "n1", "n2"]
    assert oxford_ap(names, {"p1", "p2"}, set()) == pytest.approx(1.0)
    sim = np.array([[0.9, 0.8, 0.1, 0.2], [0.1, 0.2, 0.9, 0.8]])
    aps = retrieval_aps(sim, names, [frozenset({"p1", "p2"})] * 2, [frozenset()] * 2)
    expected = reference_compute_ap({"p1", "p2"}, set(), ["n1", "n2", "p2", "p1"])
    assert aps == pytest.approx([1.0, expected])
