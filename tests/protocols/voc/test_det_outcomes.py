"""The per-detection records of a voc07-det evaluation recompute its reported mAP."""

from __future__ import annotations

import numpy as np
import pytest

from dcbench.data.voc import VOC_CLASSES
from dcbench.leaderboards.paired import paired_delta
from dcbench.leaderboards.paired_det import DetLayout
from dcbench.protocols.base import get_protocol
from dcbench.protocols.voc.det_outcomes import detection_arrays, detection_outcomes
from dcbench.protocols.voc.metrics import class_rankings
from dcbench.protocols.voc07_det import metric_switches, voc07_det_scores
from tests.leaderboards.det_fixtures import detections_for, truth_set

C = len(VOC_CLASSES)


@pytest.mark.parametrize("dialect", ["dc2018", "faithful-2018"])
@pytest.mark.parametrize("extra", [[], ["ap_method=all"]])
@pytest.mark.parametrize("grid", [0, 6])
def test_records_recompute_the_reported_map_exactly(dialect: str, extra: list, grid: int
                                                    ) -> None:
    """Each dialect's switches (faithful-2018: 3-decimal rounding, devkit thresholds,
    quicksort ties, IoU > 0.5), tied scores or not: the stored records give the reported
    `map` and every class AP bit for bit."""
    config = get_protocol("voc07-det").resolve_config(dialect=dialect, overrides=extra)
    truth = truth_set(60, C, seed=11)
    detections = detections_for(truth, C, seed=12, score_grid=grid)
    metrics, rankings = voc07_det_scores(detections, truth, **metric_switches(config))
    entry = detection_outcomes("test", "fc6-8", "L", rankings, truth,
                               ap_method=config.ap_method, ap_thresholds=config.ap_thresholds)
    assert paired_delta(entry, entry, resamples=10).a == 100.0 * metrics["map"]
    aps = DetLayout.build(entry.arrays, entry.options).ap(np.ones((1, len(truth))))[0]
    want = [metrics[f"ap_{name}"] for name in VOC_CLASSES]
    np.testing.assert_array_equal(aps, want)


def test_records_are_the_counted_detections_in_ranked_order() -> None:
    """A hand-checked image: a hit, a duplicate, a hit on a difficult box (left out), a
    miss, and an image without objects."""
    truth = [{"boxes": np.array([[1, 1, 10, 10], [50, 50, 60, 60.0]]),
              "labels": np.array([0, 0]), "difficult": np.array([False, True])},
             {"boxes": np.zeros((0, 4)), "labels": np.zeros(0, np.int64),
              "difficult": np.zeros(0, bool)}]
    detections = [{"boxes": np.array([[1, 1, 10, 10], [1, 1, 10, 10], [50, 50, 60, 60],
                                      [100, 100, 120, 120.0]]),
                   "labels": np.array([0, 0, 0, 1]), "scores": np.array([0.9, 0.8, 0.95, 0.3])},
                  {"boxes": np.array([[5, 5, 9, 9.0]]), "labels": np.array([0]),
                   "scores": np.array([0.85])}]
    arrays = detection_arrays(class_rankings(detections, truth, 2), truth)
    np.testing.assert_array_equal(arrays["npos"], [[1, 0], [0, 0]])
    np.testing.assert_array_equal(arrays["det_class"], [0, 0, 0, 1])
    np.testing.assert_array_equal(arrays["det_image"], [0, 1, 0, 0])  # 0.95 ignored
    np.testing.assert_array_equal(arrays["det_tp"], [1, 0, 0, 0])
    np.testing.assert_allclose(arrays["det_score"], [0.9, 0.85, 0.8, 0.3])
