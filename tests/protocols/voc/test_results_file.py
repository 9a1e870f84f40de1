"""`det_rounding=py-faster-rcnn`: the detections as py-faster-rcnn's results files hold them.

The reference is ported here: `pascal_voc._write_voc_results_file` writes one line per
detection, `'{:s} {:.3f} {:.1f} {:.1f} {:.1f} {:.1f}\\n'` (score, then the 0-based box + 1),
and `voc_eval` reads the lines back with `float(...)`; the AP is the port of `voc_eval` in
`test_metrics.py`.
"""

from __future__ import annotations

import numpy as np
import pytest

from dcbench.data.voc import VOC_CLASSES
from dcbench.protocols import get_protocol
from dcbench.protocols.voc.metrics import round_like_results_file
from dcbench.protocols.voc07_det import voc07_det_metrics
from tests.protocols.voc.test_metrics import FAITHFUL, _py_faster_rcnn_voc_eval


def write_and_read_results(dets0: dict[int, dict[int, np.ndarray]], cls: int
                           ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Port of `_write_voc_results_file` for one class + the reading half of `voc_eval`."""
    lines = []
    for index, per_class in dets0.items():
        dets = per_class.get(cls, np.zeros((0, 5)))
        for k in range(dets.shape[0]):
            lines.append("{:s} {:.3f} {:.1f} {:.1f} {:.1f} {:.1f}\n".format(  # noqa: UP032
                str(index), dets[k, -1], dets[k, 0] + 1, dets[k, 1] + 1, dets[k, 2] + 1,
                dets[k, 3] + 1))
    splitlines = [x.strip().split(" ") for x in lines]
    image_ids = [x[0] for x in splitlines]
    confidence = np.array([float(x[1]) for x in splitlines])
    boxes = np.array([[float(z) for z in x[2:]] for x in splitlines]).reshape(-1, 4)
    return image_ids, confidence, boxes


def _random_case(seed: int):
    rng = np.random.default_rng(seed)
    n_images, classes = 8, (0, 3, 11)
    gts, dets0 = [], {}
    for img in range(n_images):
        m = int(rng.integers(1, 4))
        xy = rng.integers(1, 60, size=(m, 2)).astype(float)
        boxes = np.concatenate([xy, xy + rng.integers(6, 40, size=(m, 2))], 1)
        labels = rng.choice(classes, m)
        gts.append({"boxes": boxes, "labels": labels, "difficult": rng.random(m) < 0.15})
        per_class = {}
        for c in classes:
            near = boxes[labels == c]
            cand = [b - 1 + rng.normal(0, 2.0, 4) for b in near for _ in range(2)]
            cand += [np.r_[xy0, xy0 + rng.uniform(6, 30, 2)]
                     for xy0 in rng.uniform(0, 60, (int(rng.integers(0, 3)), 2))]
            if cand:
                box0 = np.asarray(cand)
                box0[:, 2:] = np.maximum(box0[:, 2:], box0[:, :2])
                # scores close together so the 3-decimal rounding creates ties
                score = 0.5 + rng.integers(0, 40, len(box0)) * 1e-3 + rng.normal(0, 3e-4,
                                                                                 len(box0))
                per_class[c] = np.c_[box0, score]
        dets0[img] = per_class
    return gts, dets0, classes


def _ours(dets0: dict[int, dict[int, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    out = []
    for img in sorted(dets0):
        rows = [(c, d) for c, arr in dets0[img].items() for d in arr]
        out.append({"boxes": np.array([d[:4] + 1 for _, d in rows]).reshape(-1, 4),
                    "labels": np.array([c for c, _ in rows], dtype=np.int64),
                    "scores": np.array([d[4] for _, d in rows])})
    return out


@pytest.mark.parametrize("seed", range(5))
def test_rounded_detections_match_the_results_file_round_trip(seed):
    gts, dets0, classes = _random_case(seed)
    ours = voc07_det_metrics(_ours(dets0), gts, det_rounding="py-faster-rcnn", **FAITHFUL)
    for c in classes:
        ids, confidence, boxes = write_and_read_results(dets0, c)
        recs = {str(i): (g["boxes"][g["labels"] == c], g["difficult"][g["labels"] == c])
                for i, g in enumerate(gts)}
        expected = _py_faster_rcnn_voc_eval(ids, confidence, boxes, recs)
        assert ours[f"ap_{VOC_CLASSES[c]}"] == pytest.approx(expected, abs=1e-12)


def test_round_trip_values_and_a_case_where_it_changes_the_ap():
    dets = [{"boxes": np.array([[1.0, 1.0, 10.0, 5.04], [2.25, 3.35, 7.05, 9.95]]),
             "labels": np.array([0, 0]), "scores": np.array([0.12349, 0.0625])}]
    rounded = round_like_results_file(dets)[0]
    expected = [[float(f"{v:.1f}") for v in row] for row in dets[0]["boxes"]]
    assert rounded["boxes"].tolist() == expected
    assert rounded["scores"].tolist() == [float(f"{v:.3f}") for v in dets[0]["scores"]]
    assert dets[0]["boxes"][0, 3] == 5.04  # the input is not modified
    # IoU 0.504 with the ground truth becomes exactly 0.5 after rounding: no match under `gt`
    gts = [{"boxes": np.array([[1.0, 1.0, 10.0, 10.0]]), "labels": np.array([0]),
            "difficult": np.array([False])}]
    one = [{k: v[:1] for k, v in dets[0].items()}]
    assert voc07_det_metrics(one, gts, **FAITHFUL)["ap_aeroplane"] == pytest.approx(1.0)
    assert voc07_det_metrics(one, gts, det_rounding="py-faster-rcnn",
                             **FAITHFUL)["ap_aeroplane"] == 0.0


def test_faithful_dialect_rounds_like_py_faster_rcnn():
    protocol = get_protocol("voc07-det")
    assert protocol.resolve_config().det_rounding == "none"
    assert protocol.resolve_config(dialect="faithful-2018").det_rounding == "py-faster-rcnn"
