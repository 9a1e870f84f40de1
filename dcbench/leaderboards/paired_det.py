"""The VOC detection AP of weighted images, from per-detection records (pure numpy/scipy).

A detection run keeps, per ranked detection the devkit counted, its image, class and TP/FP
flag, plus each image's per-class count of non-difficult boxes (`core.outcomes` kind
`detection`). Matching involves one image only, so under a bootstrap draw that gives image
i the weight w_i, each record weighs w_i and class c has sum_i w_i npos_ic positives; the AP
is recomputed along the stored ranking by the protocol's own rule (VOC07 11-point with the
`exact` or `devkit` thresholds, or the all-point area), exactly as `voc.metrics` does it.

Only the points right after a true positive matter: a false positive keeps the recall and
lowers the precision, so it never raises the max precision at any recall (11-point) nor the
precision envelope (all-point). A *segment* therefore runs from just after one TP record
to the next TP record of the same class; with `pos` / `all` mapping images to segment
columns (the TP's image / every record's image), the weighted TP and record counts of every
segment and resample are two sparse products, and the running sums give each TP point's
precision and recall. Records after a class's last TP are dropped.

With integer weights this is the AP of the test set with each image present w_i times
(the copies of a record adjacent in the ranking). The devkit's order of *tied* scores puts
the copies of two tied same-class detections of one image alternately instead; such ties
need equal scores within an image (e.g. py-faster-rcnn's 3-decimal rounding), and the
statistic then keeps the reported ranking (each record with its image's weight).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
from scipy import sparse

# `voc.metrics.ap_11point`'s thresholds and slack (the same floats, so the same AP)
POINTS = {"exact": (np.linspace(0.0, 1.0, 11), 1e-12),
          "devkit": (np.arange(0.0, 1.1, 0.1), 0.0)}
EPS = np.finfo(np.float64).eps


@dataclasses.dataclass(frozen=True)
class DetLayout:
    """The segment structure of one detection run, built once and reused by every draw."""

    pos: sparse.csr_matrix  # (n_images, n_segments): 1 at each TP record's image
    all: sparse.csr_matrix  # (n_images, n_segments): records of each image in each segment
    npos: np.ndarray  # (n_images, n_classes) float64: non-difficult boxes per image, class
    bounds: np.ndarray  # (n_classes + 1,): class c's segments are bounds[c]:bounds[c + 1]
    method: str  # "11point" | "all"
    thresholds: str  # "exact" | "devkit" (11-point only)

    @property
    def width(self) -> int:
        """Segment columns (the per-resample work arrays' width)."""
        return int(self.bounds[-1])

    @classmethod
    def build(cls, arrays: Mapping[str, np.ndarray], options: Mapping[str, str]
              ) -> DetLayout:
        """The layout of a `detection` entry's arrays under its AP rule (`options`)."""
        method = options.get("ap_method", "11point")
        thresholds = options.get("ap_thresholds", "exact")
        if method not in ("11point", "all") or thresholds not in POINTS:
            raise ValueError(f"unknown AP rule {method!r} / {thresholds!r}")
        npos = np.asarray(arrays["npos"], np.float64)
        images = np.asarray(arrays["det_image"], np.int64)
        classes = np.asarray(arrays["det_class"], np.int64)
        tp = np.asarray(arrays["det_tp"]) == 1
        n_images, n_classes = npos.shape
        bounds, rows_all, cols_all = [0], [], []
        for c in range(n_classes):
            mine = np.nonzero(classes == c)[0]  # stored in ranked order
            tp_c = tp[mine]
            seg = np.cumsum(tp_c) - tp_c  # the TPs strictly before: the segment it ends in
            live = seg < int(tp_c.sum())
            rows_all.append(images[mine][live])
            cols_all.append(bounds[-1] + seg[live])
            bounds.append(bounds[-1] + int(tp_c.sum()))
        shape = (n_images, bounds[-1])
        tp_rows = images[np.concatenate([np.nonzero(tp & (classes == c))[0]
                                         for c in range(n_classes)] or [np.zeros(0, int)])]
        pos = sparse.csr_matrix((np.ones(len(tp_rows), np.float32),
                                 (tp_rows, np.arange(len(tp_rows)))), shape=shape)
        rows, cols = np.concatenate(rows_all or [[]]), np.concatenate(cols_all or [[]])
        every = sparse.csr_matrix((np.ones(len(rows), np.float32),
                                   (rows.astype(np.int64), cols.astype(np.int64))), shape=shape)
        return cls(pos, every, npos, np.asarray(bounds, np.int64), method, thresholds)

    def ap(self, weights: np.ndarray) -> np.ndarray:
        """(B, C) AP of each image-weight row; nan for a class without a drawn positive.

        The work arrays are (segments, B): running sums go down contiguous rows."""
        weights = np.asarray(weights, dtype=np.float64)
        n_pos = weights @ self.npos  # (B, C)
        out = np.full(n_pos.shape, np.nan)
        w_t = np.ascontiguousarray(weights.T, dtype=np.float32)  # (N, B); integers: exact
        tp_w = np.asarray(self.pos.T @ w_t, dtype=np.float64)  # (segments, B)
        all_w = np.asarray(self.all.T @ w_t, dtype=np.float64)
        for c in range(n_pos.shape[1]):
            lo, hi = self.bounds[c], self.bounds[c + 1]
            cum_tp = np.cumsum(tp_w[lo:hi], axis=0)
            precision = cum_tp / np.maximum(np.cumsum(all_w[lo:hi], axis=0), EPS)
            with np.errstate(invalid="ignore", divide="ignore"):
                recall = cum_tp / n_pos[:, c]
            aps = (self._ap_11point(recall, precision) if self.method == "11point"
                   else self._ap_area(recall, precision))
            out[:, c] = np.where(n_pos[:, c] > 0, aps, np.nan)
        return out

    def _ap_11point(self, recall: np.ndarray, precision: np.ndarray) -> np.ndarray:
        """Mean over the 11 thresholds of the max precision at recall >= t (0 if none)."""
        columns = np.arange(recall.shape[1])
        # max precision from each point on, then 0 past the last point
        envelope = np.zeros((recall.shape[0] + 1, recall.shape[1]))
        envelope[:-1] = np.maximum.accumulate(precision[::-1], axis=0)[::-1]
        points, slack = POINTS[self.thresholds]
        total = np.zeros(recall.shape[1])
        for t in points:  # recall is non-decreasing: the points at recall >= t are a suffix
            first = np.sum(recall < t - slack, axis=0)
            total = total + envelope[first, columns]
        return total / 11.0

    @staticmethod
    def _ap_area(recall: np.ndarray, precision: np.ndarray) -> np.ndarray:
        """Area under the precision envelope: each recall step times the envelope there,
        summed per resample over the same terms `ap_all_point` sums (its steps, and its
        last zero-valued one up to recall 1), so the unweighted AP is the same float."""
        envelope = np.maximum.accumulate(precision[::-1], axis=0)[::-1]
        steps = np.diff(recall, axis=0, prepend=0.0)
        terms = steps * envelope
        out = np.zeros(recall.shape[1])
        for col in np.nonzero(np.isfinite(recall[-1]))[0] if len(recall) else []:
            kept = terms[:, col][steps[:, col] != 0]
            out[col] = np.sum(np.append(kept, 0.0) if recall[-1, col] != 1 else kept)
        return out


def det_layout(arrays: Mapping[str, object]) -> DetLayout:
    """The prepared layout among a `detection` entry's arrays, else one built from them
    (with the rule in `arrays["options"]`, default VOC07 11-point `exact`)."""
    layout = arrays.get("layout")
    if isinstance(layout, DetLayout):
        return layout
    options = arrays.get("options")
    return DetLayout.build(arrays, options if isinstance(options, Mapping) else {})  # type: ignore[arg-type]
