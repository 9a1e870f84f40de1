"""PASCAL VOC metrics: detection AP (VOC07 11-point and all-point), multi-label AP, mIoU.

Pure numpy functions, no I/O. They define the VOC protocols, so they are written out here
rather than borrowed:

- Detection AP follows the official devkit (`VOCevaldet.m`): detections of one class are
  sorted by score (stable sort, so ties keep input order); each one is matched to the
  ground-truth box of the same image with the highest IoU; IoU >= 0.5 on a non-difficult,
  not yet detected box is a true positive; on an already detected box it is a duplicate,
  hence a false positive; on a *difficult* box it is ignored (neither TP nor FP); below 0.5
  it is a false positive. Difficult boxes do not count as positives. Boxes are VOC pixel
  boxes (1-based, inclusive corners), so widths are `x2 - x1 + 1` as in the devkit.
  Note: like the devkit, the match goes to the highest-IoU box even if that box is already
  taken (the detection is then a duplicate), not to the best *unmatched* box.
- VOC07 AP is the 11-point interpolated AP (mean of max precision at recall >= 0, 0.1, ...,
  1); the all-point variant (VOC2010+) integrates the monotone precision envelope.
- Multi-label classification AP is scikit-learn's `average_precision_score` per class over
  non-ignored entries, with the official DeepCluster tie-break `score - 1e-5 * target`
  (a tie between a positive and a negative is resolved against the positive).
- Segmentation IoU comes from a confusion matrix; pixels labelled `ignore_index` (255) are
  dropped. A class absent from both ground truth and prediction has an undefined IoU (nan)
  and is left out of the mean (the FCN `np.nanmean` convention); a class predicted but never
  present counts with IoU 0.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Literal, NamedTuple

import numpy as np

APMethod = Literal["11point", "all"]
# Fidelity switches (docs/fidelity.md). Defaults = the MATLAB devkit semantics, exactly:
# `exact` 11-point thresholds 0, 0.1, ..., 1 (`devkit`: py-faster-rcnn's
# `np.arange(0., 1.1, 0.1)` with `rec >= t`, where 0.3, 0.6, 0.7 are slightly above);
# `stable` order of tied scores (`quicksort`: `np.argsort(-scores)` as voc_eval.py);
# IoU `ge` 0.5 is a match (`gt`: strictly greater, as voc_eval.py).
APThresholds = Literal["exact", "devkit"]
ScoreOrder = Literal["stable", "quicksort"]
IoUMatch = Literal["ge", "gt"]
# `py-faster-rcnn`: detections as its results files hold them (score '{:.3f}', box '{:.1f}').
DetRounding = Literal["none", "py-faster-rcnn"]


def voc_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one VOC box (x1, y1, x2, y2; inclusive pixels) with each row of `boxes`."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    box = np.asarray(box, dtype=np.float64)
    iw = np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]) + 1.0
    ih = np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]) + 1.0
    inter = np.clip(iw, 0.0, None) * np.clip(ih, 0.0, None)
    area = (box[2] - box[0] + 1.0) * (box[3] - box[1] + 1.0)
    areas = (boxes[:, 2] - boxes[:, 0] + 1.0) * (boxes[:, 3] - boxes[:, 1] + 1.0)
    return inter / (area + areas - inter)


def score_ranking(scores: np.ndarray, score_order: ScoreOrder = "stable") -> np.ndarray:
    """Detection indices by descending score; `score_order` says how ties are ordered
    (`stable`: input order, as the devkit; `quicksort`: `np.argsort(-scores)`, voc_eval.py)."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if score_order == "stable":
        return np.argsort(-scores, kind="stable")
    if score_order == "quicksort":
        return np.argsort(-scores)
    raise ValueError(f"unknown score_order {score_order!r}")


def match_detections(
    image_ids: Sequence[Hashable],
    scores: np.ndarray,
    boxes: np.ndarray,
    ground_truth: Mapping[Hashable, tuple[np.ndarray, np.ndarray]],
    iou_threshold: float = 0.5,
    *,
    score_order: ScoreOrder = "stable",
    iou_match: IoUMatch = "ge",
) -> tuple[np.ndarray, np.ndarray, int]:
    """Label the detections of one class TP / FP in descending score order (VOC devkit rules).

    `ground_truth` maps image id -> (boxes (M, 4), difficult (M,) bool) for this class.
    `score_order` and `iou_match` are the tie switches (see the module constants).
    Returns `(tp, fp, n_positives)`: two 0/1 arrays in sorted order (a detection ignored
    because it hit a difficult box has 0 in both) and the number of non-difficult boxes.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if not len(image_ids) == len(scores) == len(boxes):
        raise ValueError("image_ids, scores and boxes must have the same length")
    n_pos = int(sum(int((~np.asarray(d, bool)).sum()) for _, d in ground_truth.values()))
    taken = {key: np.zeros(len(np.asarray(d)), dtype=bool) for key, (_, d) in ground_truth.items()}
    if iou_match not in ("ge", "gt"):
        raise ValueError(f"unknown iou_match {iou_match!r}")
    order = score_ranking(scores, score_order)
    tp = np.zeros(len(order))
    fp = np.zeros(len(order))
    for rank, det in enumerate(order):
        key = image_ids[det]
        if key not in ground_truth or len(ground_truth[key][0]) == 0:
            fp[rank] = 1
            continue
        gt_boxes, difficult = ground_truth[key]
        overlaps = voc_iou(boxes[det], gt_boxes)
        best = int(np.argmax(overlaps))
        hit = (overlaps[best] >= iou_threshold if iou_match == "ge"
               else overlaps[best] > iou_threshold)
        if not hit:
            fp[rank] = 1
        elif bool(np.asarray(difficult, bool)[best]):
            continue  # a hit on a difficult box is neither rewarded nor penalised
        elif taken[key][best]:
            fp[rank] = 1  # duplicate detection
        else:
            tp[rank] = 1
            taken[key][best] = True
    return tp, fp, n_pos


def precision_recall(
    tp: np.ndarray, fp: np.ndarray, n_positives: int
) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative (recall, precision) along the ranked detections."""
    ctp = np.cumsum(tp)
    cfp = np.cumsum(fp)
    recall = ctp / n_positives if n_positives > 0 else np.full_like(ctp, np.nan)
    precision = ctp / np.maximum(ctp + cfp, np.finfo(np.float64).eps)
    return recall, precision


def ap_11point(recall: np.ndarray, precision: np.ndarray,
               thresholds: APThresholds = "exact") -> float:
    """VOC2007 AP: mean over t in {0, 0.1, ..., 1} of the max precision at recall >= t.

    `exact` compares with the decimal thresholds (up to 1e-12); `devkit` uses the float
    steps of `np.arange(0., 1.1, 0.1)` and a plain `>=`, as py-faster-rcnn's voc_eval.py.
    """
    recall = np.asarray(recall, dtype=np.float64)
    precision = np.asarray(precision, dtype=np.float64)
    if thresholds == "exact":
        points, slack = np.linspace(0.0, 1.0, 11), 1e-12
    elif thresholds == "devkit":
        points, slack = np.arange(0.0, 1.1, 0.1), 0.0
    else:
        raise ValueError(f"unknown ap_thresholds {thresholds!r}; valid: exact, devkit")
    total = 0.0
    for t in points:
        above = precision[recall >= t - slack]
        total += float(above.max()) if above.size else 0.0
    return total / 11.0


def ap_all_point(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC2010+ AP: area under the monotone (non-increasing) precision envelope."""
    mrec = np.concatenate([[0.0], np.asarray(recall, np.float64), [1.0]])
    mpre = np.concatenate([[0.0], np.asarray(precision, np.float64), [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def average_precision(
    recall: np.ndarray, precision: np.ndarray, method: APMethod = "11point",
    ap_thresholds: APThresholds = "exact",
) -> float:
    """AP from a precision/recall curve with the VOC07 (`11point`) or VOC2010+ (`all`) rule."""
    if method == "11point":
        return ap_11point(recall, precision, ap_thresholds)
    if method == "all":
        return ap_all_point(recall, precision)
    raise ValueError(f"unknown AP method {method!r}; valid: 11point, all")


def detection_ap(
    image_ids: Sequence[Hashable],
    scores: np.ndarray,
    boxes: np.ndarray,
    ground_truth: Mapping[Hashable, tuple[np.ndarray, np.ndarray]],
    *,
    iou_threshold: float = 0.5,
    method: APMethod = "11point",
    ap_thresholds: APThresholds = "exact",
    score_order: ScoreOrder = "stable",
    iou_match: IoUMatch = "ge",
) -> float:
    """AP of one class; nan when the class has no non-difficult ground-truth box."""
    tp, fp, n_pos = match_detections(image_ids, scores, boxes, ground_truth, iou_threshold,
                                     score_order=score_order, iou_match=iou_match)
    if n_pos == 0:
        return float("nan")
    recall, precision = precision_recall(tp, fp, n_pos)
    return average_precision(recall, precision, method, ap_thresholds)


def round_like_results_file(
    detections: Sequence[Mapping[str, np.ndarray]],
) -> list[dict[str, np.ndarray]]:
    """Per-image detections as py-faster-rcnn's VOC results files hold them.

    `_write_voc_results_file` writes each score with '{:.3f}' and each 1-based box corner
    with '{:.1f}', and `voc_eval` parses them back with `float`; this reproduces that round
    trip (Python's correctly rounded decimal formatting, then parsing), without the files.
    """
    def through_text(values: np.ndarray, spec: str) -> np.ndarray:
        flat = np.asarray(values, np.float64)
        return np.array([float(format(v, spec)) for v in flat.ravel()],
                        np.float64).reshape(flat.shape)

    return [{**det, "boxes": through_text(det["boxes"], ".1f"),
             "scores": through_text(det["scores"], ".3f")} for det in detections]


class ClassRanking(NamedTuple):
    """One class's detections over a test set in ranked order, labelled by the devkit."""

    images: np.ndarray  # int64: each ranked detection's image position
    scores: np.ndarray  # float64: its score
    tp: np.ndarray  # 0/1 float: true positive
    fp: np.ndarray  # 0/1 float: false positive (neither: a hit on a difficult box)
    n_pos: int  # non-difficult ground-truth boxes of the class


def class_rankings(
    detections: Sequence[Mapping[str, np.ndarray]],
    ground_truth: Sequence[Mapping[str, np.ndarray]],
    num_classes: int,
    *,
    iou_threshold: float = 0.5,
    score_order: ScoreOrder = "stable",
    iou_match: IoUMatch = "ge",
) -> list[ClassRanking]:
    """Per class, every detection ranked and matched by the devkit rules (`voc_detection_ap`
    and the per-detection records of `leaderboards.paired_det` both start from this)."""
    if len(detections) != len(ground_truth):
        raise ValueError("one detection entry per ground-truth image is required")
    rankings = []
    for c in range(num_classes):
        gt_c: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for i, gt in enumerate(ground_truth):
            keep = np.asarray(gt["labels"]).reshape(-1) == c
            gt_c[i] = (
                np.asarray(gt["boxes"], np.float64).reshape(-1, 4)[keep],
                np.asarray(gt["difficult"], bool).reshape(-1)[keep],
            )
        ids: list[int] = []
        scores: list[np.ndarray] = []
        boxes: list[np.ndarray] = []
        for i, det in enumerate(detections):
            keep = np.asarray(det["labels"]).reshape(-1) == c
            ids.extend([i] * int(keep.sum()))
            scores.append(np.asarray(det["scores"], np.float64).reshape(-1)[keep])
            boxes.append(np.asarray(det["boxes"], np.float64).reshape(-1, 4)[keep])
        score_c = np.concatenate(scores) if scores else np.zeros(0)
        tp, fp, n_pos = match_detections(
            ids, score_c, np.concatenate(boxes) if boxes else np.zeros((0, 4)), gt_c,
            iou_threshold, score_order=score_order, iou_match=iou_match)
        order = score_ranking(score_c, score_order)  # the order match_detections used
        rankings.append(ClassRanking(np.asarray(ids, np.int64).reshape(-1)[order],
                                     score_c[order], tp, fp, n_pos))
    return rankings


def voc_detection_ap(
    detections: Sequence[Mapping[str, np.ndarray]],
    ground_truth: Sequence[Mapping[str, np.ndarray]],
    num_classes: int,
    *,
    iou_threshold: float = 0.5,
    method: APMethod = "11point",
    ap_thresholds: APThresholds = "exact",
    score_order: ScoreOrder = "stable",
    iou_match: IoUMatch = "ge",
    rankings: Sequence[ClassRanking] | None = None,
) -> np.ndarray:
    """Per-class AP over a test set (nan for a class without non-difficult boxes).

    `detections[i]` holds `boxes` (K, 4), `labels` (K,) in [0, num_classes), `scores` (K,)
    for image i; `ground_truth[i]` holds `boxes`, `labels`, `difficult` (M,). Boxes in VOC
    1-based inclusive pixel coordinates. `rankings`: `class_rankings` of the same inputs
    and switches, when the caller already has them (the matching is the costly part).
    """
    if rankings is None:
        rankings = class_rankings(detections, ground_truth, num_classes,
                                  iou_threshold=iou_threshold, score_order=score_order,
                                  iou_match=iou_match)
    aps = np.full(num_classes, np.nan)
    for c, ranked in enumerate(rankings):
        if ranked.n_pos > 0:
            recall, precision = precision_recall(ranked.tp, ranked.fp, ranked.n_pos)
            aps[c] = average_precision(recall, precision, method, ap_thresholds)
    return aps


def multilabel_ap(
    scores: np.ndarray, targets: np.ndarray, valid: np.ndarray | None = None
) -> np.ndarray:
    """Per-class AP for multi-label classification (official DeepCluster VOC07 recipe).

    `scores`, `targets` (0/1) and `valid` (bool; False = ignored, e.g. VOC "difficult") are
    (N, C). AP per class is sklearn's `average_precision_score` over valid entries with
    scores `score - 1e-5 * target`; nan for a class with no valid positive.
    """
    from sklearn.metrics import (
        average_precision_score,  # lazy: slow to import; only for the all-point AP check
    )

    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets)
    valid = np.ones(targets.shape, bool) if valid is None else np.asarray(valid, bool)
    if not scores.shape == targets.shape == valid.shape or scores.ndim != 2:
        raise ValueError("scores, targets and valid must all be (N, C) arrays")
    aps = np.full(scores.shape[1], np.nan)
    for c in range(scores.shape[1]):
        keep = valid[:, c]
        y = targets[keep, c].astype(np.float64)
        if y.sum() == 0:
            continue
        aps[c] = average_precision_score(y, scores[keep, c] - 1e-5 * y)
    return aps


def confusion_matrix(
    pred: np.ndarray, target: np.ndarray, num_classes: int, ignore_index: int = 255
) -> np.ndarray:
    """(C, C) int64 counts, rows = ground truth, columns = prediction; ignore pixels dropped."""
    pred = np.asarray(pred).reshape(-1).astype(np.int64)
    target = np.asarray(target).reshape(-1).astype(np.int64)
    if pred.shape != target.shape:
        raise ValueError("prediction and target must have the same number of pixels")
    keep = target != ignore_index
    pred, target = pred[keep], target[keep]
    if target.size and (target.min() < 0 or target.max() >= num_classes):
        raise ValueError(f"target labels must be in [0, {num_classes}) or {ignore_index}")
    if pred.size and (pred.min() < 0 or pred.max() >= num_classes):
        raise ValueError(f"predicted labels must be in [0, {num_classes})")
    counts = np.bincount(target * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def iou_from_confusion(cm: np.ndarray) -> np.ndarray:
    """Per-class IoU = TP / (TP + FP + FN); nan for a class absent from gt and prediction."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / np.where(union > 0, union, 1.0), np.nan)


def segmentation_scores(cm: np.ndarray) -> dict[str, float | np.ndarray]:
    """mIoU (nan-mean over defined classes), per-class IoU and pixel accuracy from a matrix."""
    cm = np.asarray(cm, dtype=np.float64)
    iou = iou_from_confusion(cm)
    total = cm.sum()
    defined = ~np.isnan(iou)
    return {
        "miou": float(iou[defined].mean()) if defined.any() else float("nan"),
        "iou": iou,
        "pixel_acc": float(np.trace(cm) / total) if total > 0 else float("nan"),
    }


def finite_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    """The defined entries only: a per-class value that is nan (class absent from the
    evaluation data) is not a number to store or compare."""
    return {key: float(value) for key, value in metrics.items() if np.isfinite(value)}


def row_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    """What goes into result rows: the defined entries, in percent.

    The pure cores return fractions in [0, 1]; the published VOC tables (and every other
    accuracy dcbench stores) are in percent, so rows are too and deltas compare like with like.
    """
    return {key: 100.0 * value for key, value in finite_metrics(metrics).items()}
