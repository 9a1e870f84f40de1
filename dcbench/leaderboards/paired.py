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
- mIoU (`confusion`): the per-image intersection / predicted / true pixel counts are summed
  with the draw's weights and every class IoU recomputed.
- `mean` (e.g. per-query AP): delta of the means.

The interval is the 95% percentile interval of the resampled deltas; the p-value of the
non-top-1 kinds is the bootstrap's two-sided p, min(1, 2 (k + 1) / (B + 1)) with k the
resampled deltas on the smaller side of 0. Seed variance (several probe seeds) is reported
apart: `seed_spread` of the per-seed deltas. `holm` adjusts a table's p-values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from scipy import stats

from dcbench.core.outcomes import ItemOutcomes

RESAMPLES = 10_000
SEED = 0
LEVEL = 0.95
CHUNK_CELLS = 4_000_000  # resamples x items per chunk (weights matrix of ~32 MB)


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
    flat = (idx + (np.arange(count) * n)[:, None]).ravel()
    return np.bincount(flat, minlength=count * n).reshape(count, n)


def _chunks(n: int, resamples: int) -> list[int]:
    size = max(1, CHUNK_CELLS // max(n, 1))
    return [min(size, resamples - start) for start in range(0, resamples, size)]


def bootstrap_deltas(stat: Callable[[np.ndarray], np.ndarray], n: int, resamples: int,
                     seed: int) -> np.ndarray:
    """`stat(weights)` (a (B,) array of deltas from (B, n) item weights) over `resamples`
    seeded resamples, chunked so memory stays small."""
    rng = np.random.default_rng(seed)
    return np.concatenate([stat(resample_weights(n, c, rng)) for c in _chunks(n, resamples)])


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

def weighted_ap(scores: np.ndarray, targets: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(B, C) AP per class of each weight row (an item of weight w counts as w copies).

    The official recipe (`voc.metrics.multilabel_ap`): sklearn's AP over the valid entries
    (target != -1) with scores `s - 1e-5 * y`; tied scores form one threshold; nan for a
    class without a drawn positive.
    """
    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets)
    weights = np.asarray(weights, dtype=np.float64)
    out = np.full((weights.shape[0], scores.shape[1]), np.nan)
    for c in range(scores.shape[1]):
        keep = targets[:, c] != -1
        y = (targets[keep, c] == 1).astype(np.float64)
        if not y.any():
            continue
        s = scores[keep, c] - 1e-5 * y
        order = np.argsort(-s, kind="stable")
        y, s = y[order], s[order]
        # last position of each run of equal scores: every item's threshold point
        ends = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
        group_end = np.repeat(ends, np.diff(np.r_[-1, ends]))
        w = weights[:, keep][:, order]
        tp = np.cumsum(w * y, axis=1)
        total = np.cumsum(w, axis=1)
        pos = np.nonzero(y)[0]
        at = group_end[pos]
        precision = np.divide(tp[:, at], total[:, at], out=np.zeros((len(w), len(pos))),
                              where=total[:, at] > 0)
        n_pos = tp[:, -1]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, c] = np.where(n_pos > 0, (w[:, pos] * precision).sum(1) / n_pos, np.nan)
    return out


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


def statistic(kind: str, arrays: Mapping[str, np.ndarray], weights: np.ndarray) -> np.ndarray:
    """The metric (percent) of one run's outcomes under each weight row."""
    if kind == "correct":
        return 100.0 * weights @ np.asarray(arrays["correct"], np.float64) / weights.sum(1)
    if kind == "mean":
        return 100.0 * weights @ np.asarray(arrays["values"], np.float64) / weights.sum(1)
    if kind == "multilabel":
        return 100.0 * mean_ap(weighted_ap(arrays["scores"], arrays["targets"], weights))
    if kind == "confusion":
        return 100.0 * weighted_miou(arrays["inter"], arrays["pred"], arrays["gt"], weights)
    raise ValueError(f"unknown outcome kind {kind!r}")


# ---- the comparison ----------------------------------------------------------------------

def pairable(a: ItemOutcomes, b: ItemOutcomes) -> str | None:
    """Why two entries cannot be paired (None when they can): same kind, listing, items."""
    if a.kind != b.kind:
        return f"different outcome kinds ({a.kind} vs {b.kind})"
    if a.listing != b.listing:
        return "evaluated on different item listings"
    if a.n_items != b.n_items:
        return f"different numbers of items ({a.n_items} vs {b.n_items})"
    return None


def paired_delta(a: ItemOutcomes, b: ItemOutcomes, *, resamples: int = RESAMPLES,
                 seed: int = SEED, level: float = LEVEL) -> PairedDelta:
    """A - B on the same items: point delta, paired bootstrap interval, p-value."""
    problem = pairable(a, b)
    if problem:
        raise ValueError(f"cannot pair {a.metric}: {problem}")
    n = a.n_items
    ones = np.ones((1, n))
    value_a = float(statistic(a.kind, a.arrays, ones)[0])
    value_b = float(statistic(b.kind, b.arrays, ones)[0])
    if a.kind in ("correct", "mean"):
        field = "correct" if a.kind == "correct" else "values"
        d = 100.0 * (np.asarray(a.arrays[field], np.float64)
                     - np.asarray(b.arrays[field], np.float64))
        deltas = mean_deltas(d, resamples, seed)
    else:
        deltas = bootstrap_deltas(lambda w: statistic(a.kind, a.arrays, w)
                                  - statistic(b.kind, b.arrays, w), n, resamples, seed)
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
