"""Is A really better than B? Paired intervals over test items (pure numpy/scipy).

Both runs scored the same items, so the delta's uncertainty is that of resampling the
items, once, for both models together (a paired bootstrap: Efron & Tibshirani 1993; Dror
et al. 2018). Each resample draws N item indices with replacement from a seeded numpy
Generator; the statistic is recomputed from the drawn items:

- top-1 (`correct`): delta of mean correctness. The resampled mean of d = a - b depends only
  on how many items of each distinct d value are drawn, so the draw is one multinomial over
  those values (the same distribution as drawing indices, and 10,000 x 50,000 in well under a
  second). The p-value is McNemar's exact test (two-sided binomial on the discordant items).
- mAP (`multilabel`): each class's AP is recomputed on the resampled images (an image drawn
  w times counts w times, exactly as w copies would: ties grouped as sklearn's AP does).
- VOC-interpolated mAP (`multilabel-voc`, the SVM protocols): the same, each item its own
  threshold (ties in index order) and precision made monotone from the right before summing.
- mIoU (`confusion`): the per-image intersection / predicted / true pixel counts are summed
  with the draw's weights and every class IoU recomputed.
- `mean` (e.g. per-query AP): delta of the means.
- detection mAP (`detection`): every class AP recomputed from the per-detection records
  with each record weighted by its image's draw (`leaderboards.paired_det`).

The interval is the 95% percentile interval of the resampled deltas; the p-value of the
non-top-1 kinds is the bootstrap's two-sided p, min(1, 2 (k + 1) / (B + 1)) with k the
resampled deltas on the smaller side of 0. Seed variance (several probe seeds) is reported
apart: `seed_spread` of the per-seed deltas. `holm` adjusts a table's p-values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from scipy import sparse, stats

from dcbench.core.outcomes import ItemOutcomes
from dcbench.leaderboards.paired_det import DetLayout, det_layout

RESAMPLES = 10_000
SEED = 0
LEVEL = 0.95
CHUNK_CELLS = 1_000_000  # resamples x columns per chunk (8 MB float64 work arrays)
# the mAP kinds: is each class AP VOC-interpolated (True) or sklearn's (False)
AP_KINDS = {"multilabel": False, "multilabel-voc": True}


@dataclasses.dataclass(frozen=True)
class PairedDelta:
    """A - B on the same items with its paired interval and p-value (values in percent)."""

    metric: str
    n_items: int
    a: float
    b: float
    delta: float
    low: float
    high: float
    p: float
    test: str  # "McNemar exact" or "bootstrap"
    resamples: int
    seed: int
    level: float = LEVEL

    def verdict(self) -> str:
        """`A better`, `B better` or `undecided` (the interval contains 0)."""
        if self.low > 0:
            return "A better"
        if self.high < 0:
            return "B better"
        return "undecided"

    def text(self, digits: int = 1) -> str:
        """`+1.3 [+0.4, +2.2] p=0.004` as tables print it."""
        f = f"{{:+.{digits}f}}"
        return (f"{f.format(self.delta)} [{f.format(self.low)}, {f.format(self.high)}] "
                f"p={format_p(self.p)}")


def format_p(p: float) -> str:
    """p-values with two significant digits, tiny ones as `<1e-4`."""
    return "<1e-4" if p < 1e-4 else f"{p:.2g}"


def resample_weights(n: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """(count, n) int64: how often each item is drawn in each of `count` resamples of n
    indices drawn uniformly with replacement."""
    idx = rng.integers(0, n, size=(count, n))
    out = np.empty((count, n), dtype=np.int64)
    for row in range(count):  # one small bincount per row stays in cache
        out[row] = np.bincount(idx[row], minlength=n)
    return out


def _chunks(n: int, resamples: int) -> list[int]:
    size = max(1, CHUNK_CELLS // max(n, 1))
    return [min(size, resamples - start) for start in range(0, resamples, size)]


def bootstrap_deltas(stat: Callable[[np.ndarray], np.ndarray], n: int, resamples: int,
                     seed: int, width: int = 0) -> np.ndarray:
    """`stat(weights)` (a (B,) array of deltas from (B, n) item weights) over `resamples`
    seeded resamples, chunked so memory stays small (`width`: the columns per resample of
    the statistic's own work arrays, which then stay in cache). The chunking never changes
    the draws: one Generator fills the weights row after row."""
    rng = np.random.default_rng(seed)
    chunks = _chunks(max(n, width * 8), resamples)
    return np.concatenate([stat(resample_weights(n, c, rng)) for c in chunks])


def mean_deltas(d: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """Resampled means of the per-item differences `d`: a multinomial over d's distinct
    values when there are few (top-1: -1, 0, 1), else weighted sums of drawn indices."""
    d = np.asarray(d, dtype=np.float64)
    values, counts = np.unique(d, return_counts=True)
    if len(values) <= 64:
        rng = np.random.default_rng(seed)
        draws = rng.multinomial(len(d), counts / len(d), size=resamples)
        return draws @ values / len(d)
    return bootstrap_deltas(lambda w: w @ d / len(d), len(d), resamples, seed)


def mcnemar_p(a: np.ndarray, b: np.ndarray) -> float:
    """McNemar's exact two-sided p: the discordant items (a right b wrong vs the reverse)
    under Binomial(n_discordant, 1/2); 1 when the two never disagree."""
    a, b = np.asarray(a).astype(bool), np.asarray(b).astype(bool)
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    n = only_a + only_b
    if n == 0:
        return 1.0
    return float(min(1.0, 2.0 * stats.binom.cdf(min(only_a, only_b), n, 0.5)))


def bootstrap_p(deltas: np.ndarray) -> float:
    """Two-sided bootstrap p of `delta = 0`: twice the smaller tail at 0, (k+1)/(B+1)."""
    k = min(int(np.sum(deltas <= 0)), int(np.sum(deltas >= 0)))
    return float(min(1.0, 2.0 * (k + 1) / (len(deltas) + 1)))


def percentile_interval(deltas: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The central `level` percentile interval of the resampled deltas."""
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(deltas, [tail, 1.0 - tail])
    return float(low), float(high)


# ---- statistics recomputed from weighted items -------------------------------------------

@dataclasses.dataclass(frozen=True)
class APLayout:
    """The ranking structure of a multi-label AP, computed once per run.

    Per class, the valid items are ranked by score (`s - 1e-5 * y`); tied scores form one
    threshold (block). A *segment* runs from just after one block holding a positive to the
    end of the next such block: AP = sum over segments of P_seg * cumP / cumT / P_total, with
    P / T the (weighted) positives / items of each segment. `pos` and `all` map items to
    segment columns (class c's segments at `starts[c]` ..), so the weighted sums of every
    class and resample are two sparse products; items after the last positive are dropped.
    """

    pos: sparse.csr_matrix  # (n_items, n_segments) 0/1
    all: sparse.csr_matrix  # (n_items, n_segments) 0/1
    starts: np.ndarray  # first segment column of each class that has segments
    classes: np.ndarray  # those classes
    n_classes: int
    interpolated: bool = False  # VOC all-point AP: the precision envelope (`svm.core.voc_ap`)

    @classmethod
    def build(cls, scores: np.ndarray, targets: np.ndarray, interpolated: bool = False
              ) -> APLayout:
        """The layout of (N, C) scores and targets (1 positive, 0 negative, -1 ignored).

        `interpolated`: the VOC rule of the SVM protocols: scores as they are, ranked in
        index order on ties with every item its own threshold, and the precision envelope
        (each precision replaced by the highest at or after it; only the positives' points
        can be that highest, as a negative's precision is below its predecessor's)."""
        scores = np.asarray(scores, dtype=np.float64)
        targets = np.asarray(targets)
        rows_all, cols_all, rows_pos, cols_pos, starts, classes = [], [], [], [], [], []
        width = 0
        for c in range(scores.shape[1]):
            items = np.nonzero(targets[:, c] != -1)[0]
            y = targets[items, c] == 1
            if not y.any():
                continue
            s = scores[items, c] - (0.0 if interpolated else 1e-5 * y)
            order = np.argsort(-s, kind="stable")
            items, y, s = items[order], y[order], s[order]
            block = (np.arange(len(s)) if interpolated
                     else np.r_[0, np.cumsum(np.diff(s) != 0)])
            block_pos = np.bincount(block, weights=y, minlength=block[-1] + 1) > 0
            seen = np.cumsum(block_pos)  # positive blocks up to and including each block
            seg = np.where(block_pos, seen - 1, seen)[block]  # the segment each item ends in
            live = seg < seen[-1]
            starts.append(width)
            classes.append(c)
            rows_all.append(items[live])
            cols_all.append(width + seg[live])
            rows_pos.append(items[live & y])
            cols_pos.append(width + seg[live & y])
            width += int(seen[-1])
        shape = (scores.shape[0], width)

        def indicator(rows: list[np.ndarray], cols: list[np.ndarray]) -> sparse.csr_matrix:
            r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
            k = np.concatenate(cols) if cols else np.zeros(0, np.int64)
            return sparse.csr_matrix((np.ones(len(r), np.float32), (r, k)), shape=shape)

        return cls(indicator(rows_pos, cols_pos), indicator(rows_all, cols_all),
                   np.asarray(starts, np.int64), np.asarray(classes, np.int64),
                   scores.shape[1], interpolated)

    def ap(self, weights: np.ndarray) -> np.ndarray:
        """(B, C) AP of each weight row; nan for a class without a drawn positive."""
        out = np.full((weights.shape[0], self.n_classes), np.nan)
        if not len(self.classes):
            return out
        w_t = np.ascontiguousarray(np.asarray(weights, dtype=np.float32).T)  # (N, B)
        # (B, segments): segment sums of every resample (rows contiguous for the cumsums)
        pos = np.ascontiguousarray((self.pos.T @ w_t).T, dtype=np.float64)
        total = np.ascontiguousarray((self.all.T @ w_t).T, dtype=np.float64)

        def per_class_cumsum(x: np.ndarray) -> np.ndarray:
            # one running sum that restarts at each class: take the previous class's sum
            # away at each class start (integer-valued floats: exact)
            sums = np.add.reduceat(x, self.starts, axis=1)
            x = x.copy()
            x[:, self.starts[1:]] -= sums[:, :-1]
            return np.cumsum(x, axis=1)

        cum_pos, cum_total = per_class_cumsum(pos), per_class_cumsum(total)
        precision = np.divide(cum_pos, cum_total, out=np.zeros_like(cum_pos),
                              where=cum_total > 0)
        if self.interpolated:  # the envelope, class by class (right to left)
            for a, b in zip(self.starts, np.r_[self.starts[1:], pos.shape[1]], strict=True):
                precision[:, a:b] = np.maximum.accumulate(precision[:, a:b][:, ::-1],
                                                          axis=1)[:, ::-1]
        summed = np.add.reduceat(pos * precision, self.starts, axis=1)
        n_pos = cum_pos[:, np.r_[self.starts[1:], pos.shape[1]] - 1]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, self.classes] = np.where(n_pos > 0, summed / n_pos, np.nan)
        return out


def weighted_ap(scores: np.ndarray, targets: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(B, C) AP per class of each weight row (an item of weight w counts as w copies).

    The official recipe (`voc.metrics.multilabel_ap`): sklearn's AP over the valid entries
    (target != -1) with scores `s - 1e-5 * y`; tied scores form one threshold; nan for a
    class without a drawn positive.
    """
    return APLayout.build(scores, targets).ap(weights)


def mean_ap(aps: np.ndarray) -> np.ndarray:
    """Mean over the classes with an AP (nan-mean per row), as `voc07_cls_metrics`."""
    defined = np.isfinite(aps)
    return np.where(defined.any(1), np.nansum(aps, 1) / np.maximum(defined.sum(1), 1), np.nan)


def weighted_miou(inter: np.ndarray, pred: np.ndarray, gt: np.ndarray,
                  weights: np.ndarray) -> np.ndarray:
    """(B,) mIoU of each weight row: IoU per class from weighted pixel counts, mean over the
    classes with a non-empty union (as `voc.metrics.segmentation_scores`)."""
    weights = np.asarray(weights, dtype=np.float64)
    tp = weights @ np.asarray(inter, dtype=np.float64)
    union = weights @ np.asarray(pred, dtype=np.float64) + weights @ np.asarray(
        gt, dtype=np.float64) - tp
    defined = union > 0
    iou = np.divide(tp, union, out=np.zeros_like(tp), where=defined)
    return np.where(defined.any(1), iou.sum(1) / np.maximum(defined.sum(1), 1), np.nan)


def statistic(kind: str, arrays: Mapping[str, object], weights: np.ndarray) -> np.ndarray:
    """The metric (percent) of one run's outcomes under each weight row."""
    if kind == "correct":
        return 100.0 * weights @ np.asarray(arrays["correct"], np.float64) / weights.sum(1)
    if kind == "mean":
        return 100.0 * weights @ np.asarray(arrays["values"], np.float64) / weights.sum(1)
    if kind in AP_KINDS:
        layout = arrays.get("layout")
        if not isinstance(layout, APLayout):
            layout = APLayout.build(arrays["scores"], arrays["targets"], AP_KINDS[kind])
        return 100.0 * mean_ap(layout.ap(weights))
    if kind == "confusion":
        return 100.0 * weighted_miou(arrays["inter"], arrays["pred"], arrays["gt"], weights)
    if kind == "detection":
        return 100.0 * mean_ap(det_layout(arrays).ap(weights))
    raise ValueError(f"unknown outcome kind {kind!r}")


# ---- the comparison ----------------------------------------------------------------------

def _width(arrays: Mapping[str, object]) -> int:
    """Columns of the AP layout's per-resample arrays (0 for the other kinds)."""
    layout = arrays.get("layout")
    if isinstance(layout, DetLayout):  # several work arrays per class slice: fewer rows
        return layout.width // 4
    return layout.pos.shape[1] if isinstance(layout, APLayout) else 0


def _prepared(entry: ItemOutcomes) -> Mapping[str, object]:
    """The entry's arrays plus what every resample reuses (the AP ranking layout)."""
    if entry.kind == "detection":
        return {**entry.arrays, "layout": DetLayout.build(entry.arrays, entry.options)}
    if entry.kind not in AP_KINDS:
        return entry.arrays
    return {**entry.arrays, "layout": APLayout.build(entry.arrays["scores"],
                                                     entry.arrays["targets"],
                                                     AP_KINDS[entry.kind])}


def pairable(a: ItemOutcomes, b: ItemOutcomes) -> str | None:
    """Why two entries cannot be paired (None when they can): same kind, listing, items."""
    if a.kind != b.kind:
        return f"different outcome kinds ({a.kind} vs {b.kind})"
    if a.listing != b.listing:
        return "evaluated on different item listings"
    if a.n_items != b.n_items:
        return f"different numbers of items ({a.n_items} vs {b.n_items})"
    if dict(a.options) != dict(b.options):
        return f"different metric rules ({dict(a.options)} vs {dict(b.options)})"
    return None


def paired_delta(a: ItemOutcomes, b: ItemOutcomes, *, resamples: int = RESAMPLES,
                 seed: int = SEED, level: float = LEVEL) -> PairedDelta:
    """A - B on the same items: point delta, paired bootstrap interval, p-value."""
    problem = pairable(a, b)
    if problem:
        raise ValueError(f"cannot pair {a.metric}: {problem}")
    n = a.n_items
    ones = np.ones((1, n))
    arrays_a, arrays_b = _prepared(a), _prepared(b)  # (with their metric rule)
    value_a = float(statistic(a.kind, arrays_a, ones)[0])
    value_b = float(statistic(b.kind, arrays_b, ones)[0])
    if a.kind in ("correct", "mean"):
        field = "correct" if a.kind == "correct" else "values"
        d = 100.0 * (np.asarray(a.arrays[field], np.float64)
                     - np.asarray(b.arrays[field], np.float64))
        deltas = mean_deltas(d, resamples, seed)
    else:
        width = max(_width(arrays_a), _width(arrays_b))
        deltas = bootstrap_deltas(lambda w: statistic(a.kind, arrays_a, w)
                                  - statistic(b.kind, arrays_b, w), n, resamples, seed, width)
        deltas = deltas[np.isfinite(deltas)]
    low, high = percentile_interval(deltas, level)
    if a.kind == "correct":
        p, test = mcnemar_p(a.arrays["correct"], b.arrays["correct"]), "McNemar exact"
    else:
        p, test = bootstrap_p(deltas), "bootstrap"
    return PairedDelta(a.metric, n, value_a, value_b, value_a - value_b, low, high, p, test,
                       resamples, seed, level)


@dataclasses.dataclass(frozen=True)
class SeedSpread:
    """The spread of A - B over probe seeds (kept apart from the item interval)."""

    n_seeds: int
    mean: float
    std: float

    def text(self) -> str:
        """`seeds: +1.2 +- 0.3 (3 seeds)`."""
        return f"seeds: {self.mean:+.1f} +- {self.std:.1f} ({self.n_seeds} seeds)"


def seed_spread(deltas: Sequence[float]) -> SeedSpread | None:
    """Mean and sample std of the per-seed deltas; None with fewer than two seeds."""
    values = np.asarray(list(deltas), dtype=np.float64)
    if len(values) < 2:
        return None
    return SeedSpread(len(values), float(values.mean()), float(values.std(ddof=1)))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error), in the input order."""
    p = np.asarray(list(pvalues), dtype=np.float64)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order]) if m else p
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out.tolist()
