"""Paired bootstrap intervals (`dcbench.leaderboards.paired`) vs the plain-loop bootstrap.

Four rows, each at the README's sizes (quick: smaller):
- top-1: 10,000 resamples of 50,000 items x 2 models (ImageNet val) with McNemar's p. The
  baseline is what a user would write: a loop drawing 50,000 indices per resample and
  taking the mean difference, timed on a subset of the resamples and scaled to 10,000.
- mAP: 10,000 resamples of 4,952 images x 20 classes (VOC07 test), every class AP
  recomputed per resample. The baseline loop draws the images and calls the official AP
  (`protocols.voc.metrics.multilabel_ap`, sklearn) for both models, on a subset, scaled.
- VOC-interpolated mAP (the SVM protocols' `multilabel-voc` outcomes): the same sizes, each
  class AP the VOC all-point interpolated one; the loop calls `svm.core.voc_ap`.
- detection mAP: 10,000 resamples of 4,952 images x 20 classes with 100 detections per
  image (py-faster-rcnn's `max_per_image`: ~495,000 per model), every class AP recomputed
  from the per-detection records (`leaderboards.paired_det`). The baseline loop draws the
  images and reruns the official VOC07 AP (`voc_detection_ap`, matching included) for
  both models, on a subset, scaled. Setting up (the one matching of each run, as
  `voc07-det` does when it evaluates) is not timed.
The notes give the intervals: dcbench's and, for top-1, the loop's on its subset.
"""

from __future__ import annotations

import numpy as np

from benchmarks.common import Row, timeit


def top1_pair(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """B right with p=0.7; A flips 5% of B's answers (the issue's known-answer case)."""
    rng = np.random.default_rng(seed)
    b = rng.random(n) < 0.7
    return np.where(rng.random(n) < 0.05, ~b, b), b


def voc_like(n: int, classes: int = 20, seed: int = 0
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scores A, scores B, targets) with VOC07-test-like label rates (7% positive, 3%
    difficult); A separates the classes a little better than B."""
    rng = np.random.default_rng(seed)
    targets = rng.choice([1, 0, -1], size=(n, classes), p=[0.07, 0.90, 0.03]).astype(np.int8)
    pos = targets == 1
    a = (rng.random((n, classes)) + 0.50 * pos).astype(np.float32)
    b = (rng.random((n, classes)) + 0.45 * pos).astype(np.float32)
    return a, b, targets


def voc_det_like(n: int, per_image: int = 100, classes: int = 20, seed: int = 0
                 ) -> tuple[list[dict], list[dict], list[dict]]:
    """(truth, detections A, detections B) like VOC07 test under a Fast R-CNN: ~2.4 objects
    per image (15% difficult, skewed class frequencies), per object 1-3 boxes near it
    (tight or loose, mostly the right class, scored high), the rest of the `per_image`
    boxes background with low scores; A is the more skilled detector."""
    rng = np.random.default_rng(seed)
    freq = rng.dirichlet(np.full(classes, 2.0))
    truth = []
    for _ in range(n):
        m = int(min(rng.poisson(2.4), 12))
        xy = rng.uniform(1, 300, (m, 2))
        truth.append({"boxes": np.concatenate([xy, xy + rng.uniform(30, 200, (m, 2))], 1),
                      "labels": rng.choice(classes, m, p=freq),
                      "difficult": rng.random(m) < 0.15})

    def detector(skill: float, seed: int) -> list[dict]:
        rng = np.random.default_rng(seed)
        out = []
        for gt in truth:
            boxes, labels, scores = [], [], []
            for box, label in zip(gt["boxes"], gt["labels"], strict=True):
                k = int(rng.integers(1, 4))
                size = np.r_[box[2:] - box[:2], box[2:] - box[:2]]
                spread = np.where(rng.random(k) < skill, 0.08, 0.35)[:, None]
                boxes.append(box + rng.uniform(-1, 1, (k, 4)) * size * spread)
                labels.append(np.where(rng.random(k) < skill, label,
                                       rng.integers(0, classes, k)))
                scores.append(rng.beta(2 + 3 * skill, 2, k))
            rest = max(per_image - sum(len(x) for x in labels), 0)
            xy = rng.uniform(1, 400, (rest, 2))
            boxes.append(np.concatenate([xy, xy + rng.uniform(10, 150, (rest, 2))], 1))
            labels.append(rng.integers(0, classes, rest))
            scores.append(0.05 + 0.6 * rng.beta(1, 6, rest))
            out.append({"boxes": np.concatenate(boxes)[:per_image],
                        "labels": np.concatenate(labels)[:per_image],
                        "scores": np.concatenate(scores)[:per_image]})
        return out

    return truth, detector(0.8, seed + 1), detector(0.7, seed + 2)


def loop_det(a: list[dict], b: list[dict], truth: list[dict], resamples: int,
             seed: int = 1) -> np.ndarray:
    """The plain-loop paired bootstrap of the detection mAP delta with the official AP."""
    from dcbench.protocols.voc.metrics import voc_detection_ap

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(resamples):
        idx = rng.integers(0, len(truth), len(truth))
        t = [truth[i] for i in idx]
        ap_a = voc_detection_ap([a[i] for i in idx], t, 20)
        ap_b = voc_detection_ap([b[i] for i in idx], t, 20)
        out.append(100 * (np.nanmean(ap_a) - np.nanmean(ap_b)))
    return np.array(out)


def loop_top1(a: np.ndarray, b: np.ndarray, resamples: int, seed: int = 1) -> np.ndarray:
    """The plain-loop paired bootstrap of the top-1 delta (percent)."""
    rng = np.random.default_rng(seed)
    d = a.astype(np.float64) - b.astype(np.float64)
    return np.array([100 * d[rng.integers(0, len(d), len(d))].mean() for _ in range(resamples)])


def loop_map(a: np.ndarray, b: np.ndarray, targets: np.ndarray, resamples: int,
             seed: int = 1) -> np.ndarray:
    """The plain-loop paired bootstrap of the mAP delta with the official AP (percent)."""
    from dcbench.protocols.voc.metrics import multilabel_ap

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(resamples):
        idx = rng.integers(0, len(targets), len(targets))
        t = targets[idx]
        ap_a = multilabel_ap(a[idx], (t == 1).astype(np.int64), t != -1)
        ap_b = multilabel_ap(b[idx], (t == 1).astype(np.int64), t != -1)
        out.append(100 * (np.nanmean(ap_a) - np.nanmean(ap_b)))
    return np.array(out)


def loop_voc_map(a: np.ndarray, b: np.ndarray, targets: np.ndarray, resamples: int,
                 seed: int = 1) -> np.ndarray:
    """The plain-loop paired bootstrap of the VOC-interpolated mAP delta (percent)."""
    from dcbench.protocols.svm.core import voc_ap

    def mean_ap(scores: np.ndarray, t: np.ndarray) -> float:
        aps = [voc_ap(scores[t[:, c] != -1, c], t[t[:, c] != -1, c]) for c in range(t.shape[1])]
        return float(np.nanmean(aps))

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(resamples):
        idx = rng.integers(0, len(targets), len(targets))
        out.append(100 * (mean_ap(a[idx], targets[idx]) - mean_ap(b[idx], targets[idx])))
    return np.array(out)


def run(quick: bool) -> list[Row]:
    """Time both bootstraps; the loop baselines on a subset of resamples, scaled."""
    from dcbench.core.outcomes import ItemOutcomes, correct_outcomes
    from dcbench.leaderboards.paired import paired_delta

    resamples = 2_000 if quick else 10_000
    n_top1, n_voc = (5_000, 1_000) if quick else (50_000, 4_952)
    loop_top1_n, loop_map_n = (200, 10) if quick else (500, 20)

    a, b = top1_pair(n_top1)
    ea, eb = (correct_outcomes("val", "conv5", "top1", "L", x) for x in (a, b))
    t_dc, result = timeit(lambda: paired_delta(ea, eb, resamples=resamples), repeat=1)
    t_loop, loop = timeit(lambda: loop_top1(a, b, loop_top1_n), repeat=1)
    low, high = np.quantile(loop, [0.025, 0.975])
    rows = [Row(benchmark="paired_bootstrap",
                what=f"top-1 paired bootstrap, {resamples:,} resamples of {n_top1:,} items x 2",
                dcbench=t_dc, unit="s", baseline_name="plain-loop bootstrap (scaled)",
                baseline=t_loop * resamples / loop_top1_n,
                notes=f"dcbench {result.text()} ({result.test}); loop on {loop_top1_n} "
                      f"resamples [{low:+.2f}, {high:+.2f}]; true delta -2.0")]

    sa, sb, targets = voc_like(n_voc)
    # the same classifier scores under both AP rules: sklearn's (voc07-cls) and VOC's
    # interpolated one (the SVM protocols), each against a loop calling the reference AP
    for kind, layer, loop_fn, what, baseline_name in (
            ("multilabel", "all", loop_map, "mAP", "loop + official AP (scaled)"),
            ("multilabel-voc", "conv5", loop_voc_map, "VOC-interpolated mAP (SVM)",
             "loop + svm voc_ap (scaled)")):
        ma, mb = (ItemOutcomes("test", layer, "map", kind, "L",
                               {"scores": s.astype(np.float64) if kind == "multilabel-voc"
                                else s, "targets": targets}) for s in (sa, sb))
        t_dc, result = timeit(lambda a=ma, b=mb: paired_delta(a, b, resamples=resamples),
                              repeat=1)
        t_loop, _ = timeit(lambda f=loop_fn: f(sa, sb, targets, loop_map_n), repeat=1)
        rows.append(Row(benchmark="paired_bootstrap",
                        what=f"{what} paired bootstrap, {resamples:,} resamples of {n_voc:,} "
                             f"images x 20 classes",
                        dcbench=t_dc, unit="s", baseline_name=baseline_name,
                        baseline=t_loop * resamples / loop_map_n,
                        notes=f"dcbench {result.text()}; every class AP recomputed per resample"))

    rows.append(detection_row(200 if quick else 4_952, resamples, 1 if quick else 2))
    return rows


def detection_row(n: int, resamples: int, loop_n: int) -> Row:
    """The detection-mAP bootstrap of two simulated detectors on `n` images."""
    from dcbench.leaderboards.paired import paired_delta
    from dcbench.protocols.voc.det_outcomes import detection_outcomes
    from dcbench.protocols.voc.metrics import class_rankings

    truth, det_a, det_b = voc_det_like(n)
    ea, eb = (detection_outcomes("test", "fc6-8", "L", class_rankings(d, truth, 20), truth,
                                 ap_method="11point", ap_thresholds="exact")
              for d in (det_a, det_b))
    t_dc, result = timeit(lambda: paired_delta(ea, eb, resamples=resamples), repeat=1)
    t_loop, _ = timeit(lambda: loop_det(det_a, det_b, truth, loop_n), repeat=1)
    records = len(ea.arrays["det_tp"]) + len(eb.arrays["det_tp"])
    return Row(benchmark="paired_bootstrap",
               what=f"detection mAP paired bootstrap, {resamples:,} resamples of {n:,} images "
                    f"x 20 classes, 100 detections per image",
               dcbench=t_dc, unit="s", baseline_name="loop + official VOC07 AP (scaled)",
               baseline=t_loop * resamples / loop_n,
               notes=f"dcbench {result.text()} (mAP {result.a:.1f} vs {result.b:.1f}); "
                     f"{records:,} detection records of 2 models, every class AP recomputed "
                     f"per resample; loop on {loop_n} resample(s)")
