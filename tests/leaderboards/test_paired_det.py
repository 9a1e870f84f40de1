"""Detection-mAP paired intervals from per-detection records, checked against the official
AP (`voc_detection_ap`) on physically duplicated images and plain-loop bootstraps."""

from __future__ import annotations

import numpy as np
import pytest

from dcbench.core.outcomes import ItemOutcomes
from dcbench.leaderboards import paired
from dcbench.leaderboards.paired_det import DetLayout
from dcbench.protocols.voc.det_outcomes import detection_outcomes
from dcbench.protocols.voc.metrics import (
    average_precision,
    class_rankings,
    precision_recall,
    voc_detection_ap,
)
from tests.leaderboards.det_fixtures import detections_for, duplicated, truth_set

C = 4
MATCHING = ("score_order", "iou_match")


def _entry(detections, truth, **rule) -> ItemOutcomes:
    """A detection entry of (detections, truth) under `rule` (voc_detection_ap keywords)."""
    rankings = class_rankings(detections, truth, C, **{k: v for k, v in rule.items()
                                                      if k in MATCHING})
    return detection_outcomes("test", "fc6-8", "L", rankings, truth,
                              ap_method=rule.get("method", "11point"),
                              ap_thresholds=rule.get("ap_thresholds", "exact"))


RULES = [
    {},
    {"ap_thresholds": "devkit"},
    {"method": "all"},
    {"ap_thresholds": "devkit", "score_order": "quicksort", "iou_match": "gt"},
]


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("grid", [0, 8])
def test_integer_weights_equal_physically_duplicated_images(rule: dict, grid: int) -> None:
    """Weights 0-3 per image = the official AP of the set with each image repeated that
    often (grid: tied scores across images; `quicksort` orders ties its own way, so only
    with continuous scores)."""
    if grid and rule.get("score_order") == "quicksort":
        pytest.skip("quicksort's order of ties is not the devkit's image order")
    truth = truth_set(40, C, seed=1)
    detections = detections_for(truth, C, seed=2, score_grid=grid)
    entry = _entry(detections, truth, **rule)
    layout = DetLayout.build(entry.arrays, entry.options)
    weights = np.random.default_rng(3).integers(0, 4, (5, 40))
    got = layout.ap(weights)
    for row, w in zip(got, weights, strict=True):
        want = voc_detection_ap(duplicated(detections, w), duplicated(truth, w), C, **rule)
        if rule.get("method") == "all":  # the same terms, summed in another grouping
            np.testing.assert_allclose(row, want, rtol=1e-12, atol=1e-15)
        else:
            np.testing.assert_array_equal(row, want)
    np.testing.assert_array_equal(layout.ap(np.ones((1, 40)))[0],
                                  voc_detection_ap(detections, truth, C, **rule))


def test_identical_runs_give_a_zero_interval_and_p_one() -> None:
    truth = truth_set(30, C, seed=4)
    entry = _entry(detections_for(truth, C, seed=5), truth)
    result = paired.paired_delta(entry, entry, resamples=500)
    assert result.delta == result.low == result.high == 0.0 and result.p == 1.0
    assert result.verdict() == "undecided" and result.test == "bootstrap"


def test_interval_matches_a_plain_loop_with_the_same_draws() -> None:
    """paired_delta vs drawing images with the same Generator and rerunning the official
    AP of both detectors on the drawn images (continuous scores: no ties)."""
    truth = truth_set(25, C, seed=6)
    det_a = detections_for(truth, C, seed=7, hit=0.95)
    det_b = detections_for(truth, C, seed=8, hit=0.7)
    a, b = _entry(det_a, truth), _entry(det_b, truth)
    result = paired.paired_delta(a, b, resamples=200, seed=12)
    draw = np.random.default_rng(12)
    loop = []
    for _ in range(200):
        idx = draw.integers(0, 25, 25)
        t = [truth[i] for i in idx]
        ap_a = voc_detection_ap([det_a[i] for i in idx], t, C)
        ap_b = voc_detection_ap([det_b[i] for i in idx], t, C)
        if np.isfinite(ap_a).any():
            loop.append(100 * (np.nanmean(ap_a) - np.nanmean(ap_b)))
    low, high = np.quantile(loop, [0.025, 0.975])
    assert (result.low, result.high) == pytest.approx((low, high), rel=1e-12)
    full = 100 * (np.nanmean(voc_detection_ap(det_a, truth, C))
                  - np.nanmean(voc_detection_ap(det_b, truth, C)))
    assert result.delta == pytest.approx(full, rel=1e-12)


def test_layout_edge_cases() -> None:
    """No detections at all: AP 0 where the class has boxes, nan where it has none (also
    once a draw leaves out every image holding it)."""
    truth = [{"boxes": np.array([[1, 1, 20, 20.0]]), "labels": np.array([1]),
              "difficult": np.array([False])}, {"boxes": np.zeros((0, 4)),
                                                "labels": np.zeros(0, np.int64),
                                                "difficult": np.zeros(0, bool)}]
    none = [{"boxes": np.zeros((0, 4)), "labels": np.zeros(0, np.int64),
             "scores": np.zeros(0)}] * 2
    entry = _entry(none, truth)
    layout = DetLayout.build(entry.arrays, entry.options)
    aps = layout.ap(np.array([[1, 1], [0, 2]]))
    np.testing.assert_array_equal(aps, [[np.nan, 0, np.nan, np.nan],
                                        [np.nan, np.nan, np.nan, np.nan]])
    with pytest.raises(ValueError, match="AP rule"):
        DetLayout.build(entry.arrays, {"ap_method": "101point"})


def test_different_ap_rules_do_not_pair() -> None:
    truth = truth_set(10, C, seed=9)
    detections = detections_for(truth, C, seed=10)
    a, b = _entry(detections, truth), _entry(detections, truth, method="all")
    assert "different metric rules" in paired.pairable(a, b)


@pytest.mark.parametrize("rule", RULES)
def test_weights_repeat_each_record_in_place_under_any_ties(rule: dict) -> None:
    """The rule as written in paired_det: each stored record counts w_i times where it
    stands in the reported ranking (here with one-decimal scores: ties within images too,
    ordered by `score_order`), n_pos = sum_i w_i npos_ic; the reference expands the
    records and runs the official precision/recall and AP functions."""
    truth = truth_set(30, C, seed=13)
    detections = detections_for(truth, C, seed=14)
    for det in detections:
        det["scores"] = np.round(det["scores"], 1)
    entry = _entry(detections, truth, **rule)
    weights = np.random.default_rng(15).integers(0, 4, (4, 30))
    got = DetLayout.build(entry.arrays, entry.options).ap(weights)
    arrays = entry.arrays
    for row, w in zip(got, weights, strict=True):
        for c in range(C):
            n_pos = int(w @ arrays["npos"][:, c])
            mine = arrays["det_class"] == c
            tp = np.repeat(arrays["det_tp"][mine], w[arrays["det_image"][mine]]).astype(float)
            if n_pos == 0:
                assert np.isnan(row[c])
                continue
            want = average_precision(*precision_recall(tp, 1 - tp, n_pos),
                                     rule.get("method", "11point"),
                                     rule.get("ap_thresholds", "exact"))
            assert row[c] == pytest.approx(want, rel=1e-12, abs=1e-15)
