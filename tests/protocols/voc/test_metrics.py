"""VOC metrics against hand-worked values and plain re-implementations written here."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from dcbench.protocols.voc import metrics as vm

# Two images, one class. Image 0: a normal box and a difficult box; image 1: a normal box.
GT = {
    0: (np.array([[1, 1, 10, 10], [21, 21, 30, 30]], float), np.array([False, True])),
    1: (np.array([[1, 1, 10, 10]], float), np.array([False])),
}
# score order: hit, duplicate of the hit, hit on the difficult box, miss, hit (IoU 0.9)
DETS = [
    (0, 0.9, [1, 1, 10, 10]),
    (0, 0.8, [1, 1, 10, 10]),
    (0, 0.7, [21, 21, 30, 30]),
    (1, 0.6, [50, 50, 60, 60]),
    (1, 0.5, [1, 1, 10, 9]),
]


def _unpack(dets):
    ids = [d[0] for d in dets]
    return ids, np.array([d[1] for d in dets]), np.array([d[2] for d in dets], float)


def test_voc_iou_uses_inclusive_pixels():
    # 10x10 box vs 10x9 box inside it: 90 / 100 with the +1 convention (not 81/90)
    assert vm.voc_iou([1, 1, 10, 10], [[1, 1, 10, 9]])[0] == pytest.approx(0.9)
    # touching boxes share one pixel column in VOC's inclusive convention
    assert vm.voc_iou([1, 1, 10, 10], [[10, 1, 19, 10]])[0] == pytest.approx(10 / 190)
    assert vm.voc_iou([1, 1, 10, 10], [[11, 1, 20, 10]])[0] == 0.0


def test_match_hand_case_difficult_and_duplicate():
    tp, fp, n_pos = vm.match_detections(*_unpack(DETS), GT)
    assert n_pos == 2  # the difficult box is not a positive
    np.testing.assert_array_equal(tp, [1, 0, 0, 0, 1])
    np.testing.assert_array_equal(fp, [0, 1, 0, 1, 0])  # the difficult hit is neither


def test_ap_hand_case_11point_and_all_point():
    ids, scores, boxes = _unpack(DETS)
    # recall/precision: (.5,1) (.5,.5) (.5,.5) (.5,1/3) (1,.5)
    # 11-point: t=0..0.5 -> 1.0 (6 points), t=0.6..1 -> 0.5 (5 points)
    assert vm.detection_ap(ids, scores, boxes, GT) == pytest.approx(8.5 / 11)
    # all-point: 0.5 * 1.0 + 0.5 * 0.5
    assert vm.detection_ap(ids, scores, boxes, GT, method="all") == pytest.approx(0.75)


def test_detection_ap_is_order_independent_of_input_but_sorted_by_score():
    ids, scores, boxes = _unpack(DETS[::-1])
    assert vm.detection_ap(ids, scores, boxes, GT) == pytest.approx(8.5 / 11)


def test_devkit_matches_highest_iou_box_even_if_taken():
    gt = {0: (np.array([[1, 1, 10, 10], [1, 1, 10, 12]], float), np.array([False, False]))}
    ids, scores, boxes = [0, 0], np.array([0.9, 0.8]), np.array([[1, 1, 10, 10]] * 2, float)
    tp, fp, n_pos = vm.match_detections(ids, scores, boxes, gt)
    # the second detection's best box is the taken one (IoU 1 > 0.83): a duplicate
    np.testing.assert_array_equal(tp, [1, 0])
    np.testing.assert_array_equal(fp, [0, 1])
    assert n_pos == 2


def test_class_without_positives_is_nan_and_images_without_gt_are_fp():
    gt = {0: (np.zeros((0, 4)), np.zeros(0, bool))}
    assert np.isnan(vm.detection_ap([0], np.array([1.0]), np.array([[1, 1, 5, 5.0]]), gt))
    tp, fp, _ = vm.match_detections([7], np.array([1.0]), np.array([[1, 1, 5, 5.0]]), GT)
    assert fp.tolist() == [1] and tp.tolist() == [0]


def _brute_force_ap(ids, scores, boxes, gt, all_point):
    """Independent AP: plain loops, recall levels k/n_pos (all-point) or 11 thresholds."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    used = {k: [False] * len(v[0]) for k, v in gt.items()}
    n_pos = sum(int(not d) for _, diff in gt.values() for d in diff)
    hits, seen, curve = 0, 0, []
    for i in order:
        g_boxes, diff = gt.get(ids[i], (np.zeros((0, 4)), []))
        best, best_j = -1.0, -1
        for j, g in enumerate(g_boxes):
            b = boxes[i]
            iw = min(b[2], g[2]) - max(b[0], g[0]) + 1
            ih = min(b[3], g[3]) - max(b[1], g[1]) + 1
            if iw > 0 and ih > 0:
                inter = iw * ih
                area_b = (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
                union = area_b + (g[2] - g[0] + 1) * (g[3] - g[1] + 1)
                ov = inter / (union - inter)
                if ov > best:
                    best, best_j = ov, j
        if best >= 0.5 and diff[best_j]:
            continue
        seen += 1
        if best >= 0.5 and not used[ids[i]][best_j]:
            used[ids[i]][best_j] = True
            hits += 1
        curve.append((hits / n_pos, hits / seen))
    levels = [k / n_pos for k in range(1, n_pos + 1)] if all_point else [t / 10 for t in range(11)]
    total = 0.0
    for r in levels:
        ps = [p for rec, p in curve if rec >= r - 1e-12]
        total += max(ps) if ps else 0.0
    return total / len(levels)


@pytest.mark.parametrize("seed", range(8))
def test_random_cases_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    gt, dets = {}, []
    for img in range(5):
        m = int(rng.integers(0, 4))
        xy = rng.integers(1, 40, size=(m, 2))
        wh = rng.integers(5, 20, size=(m, 2))
        gt[img] = (np.hstack([xy, xy + wh]).astype(float), rng.random(m) < 0.25)
        for _ in range(int(rng.integers(0, 6))):
            if m and rng.random() < 0.7:  # jitter a true box (possibly a duplicate)
                b = gt[img][0][rng.integers(m)] + rng.integers(-3, 4, size=4)
            else:
                p = rng.integers(1, 40, size=2)
                b = np.concatenate([p, p + rng.integers(5, 20, size=2)]).astype(float)
            dets.append((img, float(rng.random()), b))
    if sum(int(not d) for _, diff in gt.values() for d in diff) == 0:
        pytest.skip("no positive generated for this seed")
    ids, scores, boxes = _unpack(dets) if dets else ([], np.zeros(0), np.zeros((0, 4)))
    for method, all_point in (("all", True), ("11point", False)):
        got = vm.detection_ap(ids, scores, boxes, gt, method=method)
        assert got == pytest.approx(_brute_force_ap(ids, scores, boxes, gt, all_point), abs=1e-12)


def test_voc_detection_ap_splits_classes_and_images():
    detections = [
        {"boxes": np.array([[1, 1, 10, 10], [1, 1, 10, 10]], float), "labels": np.array([0, 1]),
         "scores": np.array([0.9, 0.8])},
        {"boxes": np.zeros((0, 4)), "labels": np.zeros(0, int), "scores": np.zeros(0)},
    ]
    ground_truth = [
        {"boxes": np.array([[1, 1, 10, 10]], float), "labels": np.array([0]),
         "difficult": np.array([False])},
        {"boxes": np.array([[1, 1, 10, 10]], float), "labels": np.array([1]),
         "difficult": np.array([False])},
    ]
    aps = vm.voc_detection_ap(detections, ground_truth, num_classes=3)
    assert aps[0] == pytest.approx(1.0)
    # class 1: a false positive in image 0, image 1's box never found -> precision 0
    assert aps[1] == pytest.approx(0.0)
    assert np.isnan(aps[2])


def test_multilabel_ap_matches_sklearn_on_valid_entries():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(40, 5))
    targets = (rng.random((40, 5)) < 0.3).astype(int)
    valid = rng.random((40, 5)) > 0.2
    aps = vm.multilabel_ap(scores, targets, valid)
    for c in range(5):
        keep = valid[:, c]
        expected = average_precision_score(targets[keep, c], scores[keep, c])
        assert aps[c] == pytest.approx(expected)  # continuous scores: no ties, no effect


def test_multilabel_ap_tie_break_and_ignored_entries():
    # the official `score - 1e-5 * target` pushes a positive below a negative within 1e-5:
    # plain sklearn would rank the positive first (AP 1.0), the official recipe gives 1/2
    scores = np.array([[0.500004], [0.5], [0.9]])
    targets = np.array([[1], [0], [1]])
    valid = np.array([[True], [True], [False]])  # the top-scored positive is "difficult"
    assert vm.multilabel_ap(scores, targets, valid)[0] == pytest.approx(0.5)
    # all entries counted: pos (0.9), neg, pos -> (1 + 2/3) / 2
    assert vm.multilabel_ap(scores, targets)[0] == pytest.approx(5 / 6)
    assert np.isnan(vm.multilabel_ap(scores, np.zeros_like(targets), valid)[0])


def test_confusion_matrix_and_miou_hand_count():
    target = np.array([[0, 0, 1, 255], [1, 1, 255, 0]])
    pred = np.array([[0, 1, 1, 2], [1, 0, 0, 0]])
    cm = vm.confusion_matrix(pred, target, num_classes=4)
    # valid pixels (gt, pred): (0,0) (0,1) (1,1) (1,1) (1,0) (0,0)
    expected = np.zeros((4, 4), int)
    expected[0, 0], expected[0, 1], expected[1, 1], expected[1, 0] = 2, 1, 2, 1
    np.testing.assert_array_equal(cm, expected)
    scores = vm.segmentation_scores(cm)
    # class 0: tp 2, union 3 + 3 - 2 = 4; class 1: tp 2, union 3 + 3 - 2 = 4
    # class 2 and 3: absent from gt and (valid-pixel) predictions -> nan, left out
    np.testing.assert_allclose(scores["iou"][:2], [0.5, 0.5])
    assert np.isnan(scores["iou"][2:]).all()
    assert scores["miou"] == pytest.approx(0.5)
    assert scores["pixel_acc"] == pytest.approx(4 / 6)


def test_predicted_but_absent_class_counts_as_zero():
    cm = vm.confusion_matrix(np.array([0, 2]), np.array([0, 0]), num_classes=3)
    iou = vm.iou_from_confusion(cm)
    assert iou[0] == pytest.approx(0.5) and iou[2] == 0.0 and np.isnan(iou[1])
    assert vm.segmentation_scores(cm)["miou"] == pytest.approx(0.25)


def test_confusion_matrix_rejects_out_of_range_labels():
    with pytest.raises(ValueError):
        vm.confusion_matrix(np.array([0]), np.array([7]), num_classes=3)


# --- fidelity switches (issue 11 item 7): py-faster-rcnn's voc_eval.py, re-implemented here ---


def _py_faster_rcnn_voc_eval(image_ids, confidence, boxes, recs, ovthresh=0.5):
    """`voc_eval` + `voc_ap(use_07_metric=True)` of py-faster-rcnn, written from its code:
    `np.argsort(-confidence)`, `ovmax > ovthresh`, thresholds `np.arange(0., 1.1, 0.1)`."""
    class_recs = {k: {"bbox": b, "difficult": d, "det": [False] * len(d)}
                  for k, (b, d) in recs.items()}
    npos = sum(int((~d).sum()) for _, d in recs.values())
    sorted_ind = np.argsort(-np.asarray(confidence, float))
    bb_all = np.asarray(boxes, float).reshape(-1, 4)[sorted_ind, :]
    ids = [image_ids[x] for x in sorted_ind]
    nd = len(ids)
    tp, fp = np.zeros(nd), np.zeros(nd)
    for d in range(nd):
        r = class_recs.get(ids[d], {"bbox": np.zeros((0, 4)), "difficult": [], "det": []})
        bb = bb_all[d, :]
        ovmax = -np.inf
        bbgt = r["bbox"]
        if bbgt.size > 0:
            ixmin = np.maximum(bbgt[:, 0], bb[0])
            iymin = np.maximum(bbgt[:, 1], bb[1])
            ixmax = np.minimum(bbgt[:, 2], bb[2])
            iymax = np.minimum(bbgt[:, 3], bb[3])
            iw = np.maximum(ixmax - ixmin + 1.0, 0.0)
            ih = np.maximum(iymax - iymin + 1.0, 0.0)
            inters = iw * ih
            uni = ((bb[2] - bb[0] + 1.0) * (bb[3] - bb[1] + 1.0)
                   + (bbgt[:, 2] - bbgt[:, 0] + 1.0) * (bbgt[:, 3] - bbgt[:, 1] + 1.0) - inters)
            overlaps = inters / uni
            ovmax = np.max(overlaps)
            jmax = np.argmax(overlaps)
        if ovmax > ovthresh:
            if not r["difficult"][jmax]:
                if not r["det"][jmax]:
                    tp[d] = 1.0
                    r["det"][jmax] = 1
                else:
                    fp[d] = 1.0
        else:
            fp[d] = 1.0
    fp, tp = np.cumsum(fp), np.cumsum(tp)
    rec = tp / float(npos)
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    ap = 0.0
    for t in np.arange(0.0, 1.1, 0.1):
        p = 0 if np.sum(rec >= t) == 0 else np.max(prec[rec >= t])
        ap = ap + p / 11.0
    return ap


FAITHFUL = {"ap_thresholds": "devkit", "score_order": "quicksort", "iou_match": "gt"}


@pytest.mark.parametrize("seed", range(6))
def test_faithful_switches_match_py_faster_rcnn_voc_eval(seed):
    rng = np.random.default_rng(seed)
    gt = {}
    for img in range(6):
        m = int(rng.integers(0, 4))
        xy = rng.integers(1, 40, size=(m, 2)).astype(float)
        wh = rng.integers(5, 30, size=(m, 2)).astype(float)
        gt[img] = (np.concatenate([xy, xy + wh], 1), rng.random(m) < 0.2)
    ids, boxes = [], []
    for img, (b, _) in gt.items():
        for box in b:  # near-copies of the ground truth (IoU around 0.5) plus misses
            for _ in range(int(rng.integers(0, 3))):
                ids.append(img)
                boxes.append(box + rng.integers(-6, 7, size=4))
        for _ in range(int(rng.integers(0, 3))):
            ids.append(img)
            xy = rng.integers(1, 60, size=2).astype(float)
            boxes.append(np.concatenate([xy, xy + rng.integers(5, 30, size=2)]))
    boxes = np.asarray(boxes, float).reshape(-1, 4)
    boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2])
    scores = np.round(rng.random(len(ids)), 1)  # many ties
    if sum(int((~d).sum()) for _, d in gt.values()) == 0:
        pytest.skip("no positive in this draw")
    got = vm.detection_ap(ids, scores, boxes, gt, **FAITHFUL)
    assert got == pytest.approx(_py_faster_rcnn_voc_eval(ids, scores, boxes, gt), abs=1e-12)


def test_recall_of_exactly_three_tenths_is_where_thresholds_differ():
    # 10 positives in 10 images, 3 perfect detections: recall tops out at exactly 0.3
    gt = {i: (np.array([[1.0, 1.0, 10.0, 10.0]]), np.array([False])) for i in range(10)}
    ids, scores, boxes = [0, 1, 2], np.array([0.9, 0.8, 0.7]), np.tile([1.0, 1, 10, 10], (3, 1))
    exact = vm.detection_ap(ids, scores, boxes, gt)
    devkit = vm.detection_ap(ids, scores, boxes, gt, ap_thresholds="devkit")
    assert exact == pytest.approx(4 / 11)  # t = 0, 0.1, 0.2, 0.3 reached
    assert devkit == pytest.approx(3 / 11)  # 0.30000000000000004 is not
    assert devkit == pytest.approx(_py_faster_rcnn_voc_eval(ids, scores, boxes, gt))


def test_iou_of_exactly_one_half_matches_only_with_ge():
    gt = {0: (np.array([[1.0, 1.0, 10.0, 10.0]]), np.array([False]))}  # 100 pixels
    half = np.array([[1.0, 1.0, 10.0, 5.0]])  # 50 pixels inside: IoU exactly 0.5
    assert vm.voc_iou(half[0], gt[0][0])[0] == 0.5
    assert vm.detection_ap([0], np.array([1.0]), half, gt) == pytest.approx(1.0)
    assert vm.detection_ap([0], np.array([1.0]), half, gt, iou_match="gt") == 0.0
    assert _py_faster_rcnn_voc_eval([0], [1.0], half, gt) == 0.0


def test_tied_scores_keep_input_order_only_when_stable():
    # two tied detections on one box: the first in sorted order is the TP, the other a duplicate
    gt = {0: (np.array([[1.0, 1.0, 10.0, 10.0]]), np.array([False]))}
    scores = np.full(17, 0.5)
    boxes = np.tile([1.0, 1, 10, 10], (17, 1))
    tp, _, _ = vm.match_detections([0] * 17, scores, boxes, gt)
    assert tp[0] == 1 and tp.sum() == 1
    tp_q, _, _ = vm.match_detections([0] * 17, scores, boxes, gt, score_order="quicksort")
    assert tp_q.sum() == 1 and tp_q[0] == 1  # ranks are sorted positions in both orders
    with pytest.raises(ValueError):
        vm.match_detections([0], scores[:1], boxes[:1], gt, score_order="heapsort")
