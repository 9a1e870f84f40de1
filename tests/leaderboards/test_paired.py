"""Paired intervals and p-values checked against independent computations: scipy's binomial
test and bootstrap, sklearn's AP on physically repeated rows, plain loops, known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from dcbench.core.outcomes import ItemOutcomes, correct_outcomes
from dcbench.leaderboards import paired
from dcbench.protocols.voc.metrics import confusion_matrix, multilabel_ap, segmentation_scores
from tests.protocols.svm.test_outcomes import plain_voc_ap


def _correct(values: np.ndarray, listing: str = "L") -> ItemOutcomes:
    return correct_outcomes("val", "conv5", "top1", listing, values)


@pytest.mark.parametrize("seed", range(5))
def test_mcnemar_matches_scipy_binomtest(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, b = rng.random(300) < 0.6, rng.random(300) < 0.55
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    expected = stats.binomtest(only_a, only_a + only_b, 0.5).pvalue
    assert paired.mcnemar_p(a, b) == pytest.approx(expected, rel=1e-9)


def test_identical_models_give_zero_interval_and_p_one() -> None:
    rng = np.random.default_rng(0)
    x = _correct(rng.random(1000) < 0.7)
    result = paired.paired_delta(x, x, resamples=500)
    assert (result.delta, result.low, result.high, result.p) == (0.0, 0.0, 0.0, 1.0)
    assert result.verdict() == "undecided"
    scores, targets = rng.random((60, 4)), np.where(rng.random((60, 4)) < 0.3, 1, 0)
    ml = ItemOutcomes("test", "all", "map", "multilabel", "L",
                      {"scores": scores, "targets": targets.astype(np.int8)})
    same = paired.paired_delta(ml, ml, resamples=200)
    assert (same.low, same.high, same.p) == (0.0, 0.0, 1.0)


def test_flipping_five_percent_covers_the_true_delta_at_nominal_rate() -> None:
    """B is right with p=0.7; A flips each of B's answers with p=0.05, so E[A - B] =
    0.05 * (0.3 - 0.7) = -2 points. The 95% interval must cover -2 in ~95% of 200 draws."""
    rng = np.random.default_rng(123)
    draws, n, covered = 200, 2000, 0
    for i in range(draws):
        b = rng.random(n) < 0.7
        a = np.where(rng.random(n) < 0.05, ~b, b)
        result = paired.paired_delta(_correct(a), _correct(b), resamples=1000, seed=i)
        covered += result.low <= -2.0 <= result.high
    # binomial tolerance: 3 standard deviations of a 95% rate over 200 draws (~0.046)
    tolerance = 3 * np.sqrt(0.95 * 0.05 / draws)
    assert abs(covered / draws - 0.95) <= tolerance


def test_mean_interval_matches_scipy_bootstrap() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(0.5, 0.2, 400)
    b = a - rng.normal(0.03, 0.05, 400)
    ea = ItemOutcomes("val", "x", "map", "mean", "L", {"values": a})
    eb = ItemOutcomes("val", "x", "map", "mean", "L", {"values": b})
    ours = paired.paired_delta(ea, eb, resamples=20_000, seed=3)
    ref = stats.bootstrap((100 * a, 100 * b), lambda x, y, axis=-1: x.mean(axis) - y.mean(axis),
                          paired=True, n_resamples=20_000, method="percentile",
                          random_state=np.random.default_rng(4), vectorized=True)
    se = ref.standard_error
    assert ours.low == pytest.approx(ref.confidence_interval.low, abs=0.1 * se)
    assert ours.high == pytest.approx(ref.confidence_interval.high, abs=0.1 * se)
    assert ours.delta == pytest.approx(100 * (a.mean() - b.mean()))


def test_multinomial_shortcut_has_the_index_resampling_distribution() -> None:
    """Top-1 draws a multinomial over d's values; a plain loop drawing indices must give the
    same distribution of resampled deltas (quantiles within Monte Carlo error)."""
    rng = np.random.default_rng(2)
    d = rng.choice([-1.0, 0.0, 1.0], size=500, p=[0.1, 0.75, 0.15])
    fast = paired.mean_deltas(d, 20_000, seed=5)
    loop_rng = np.random.default_rng(6)
    loop = np.array([d[loop_rng.integers(0, len(d), len(d))].mean() for _ in range(20_000)])
    se = d.std() / np.sqrt(len(d))
    for q in (0.025, 0.5, 0.975):
        assert np.quantile(fast, q) == pytest.approx(np.quantile(loop, q), abs=0.1 * se)


def test_weighted_ap_equals_sklearn_ap_on_repeated_rows() -> None:
    """An image drawn w times counts as w physical copies (ties included), per the official
    multi-label AP recipe; difficult (-1) entries are ignored."""
    rng = np.random.default_rng(7)
    n, c = 80, 5
    scores = np.round(rng.random((n, c)), 1)  # many ties
    targets = rng.choice([1, 0, -1], size=(n, c), p=[0.3, 0.6, 0.1]).astype(np.int8)
    weights = paired.resample_weights(n, 6, rng)
    ours = paired.weighted_ap(scores, targets, weights)
    for row in range(len(weights)):
        idx = np.repeat(np.arange(n), weights[row])
        t = targets[idx]
        expected = multilabel_ap(scores[idx], (t == 1).astype(np.int64), t != -1)
        np.testing.assert_allclose(ours[row], expected, rtol=1e-12, equal_nan=True)


def test_weighted_voc_ap_equals_the_interpolated_rule_on_repeated_rows() -> None:
    """`multilabel-voc`: each class AP is the VOC all-point interpolated AP of the SVM
    protocols (ties in index order), an image drawn w times counting as w copies."""
    rng = np.random.default_rng(17)
    n, c = 60, 4
    scores = np.round(rng.normal(size=(n, c)), 1)  # ties
    targets = rng.choice([1, 0, -1], size=(n, c), p=[0.3, 0.6, 0.1]).astype(np.int8)
    weights = paired.resample_weights(n, 6, rng)
    layout = paired.APLayout.build(scores, targets, interpolated=True)
    ours = layout.ap(weights)
    for row in range(len(weights)):
        idx = np.repeat(np.arange(n), weights[row])
        for k in range(c):
            keep = targets[idx, k] != -1
            expected = plain_voc_ap(scores[idx, k][keep], targets[idx, k][keep] == 1)
            np.testing.assert_allclose(ours[row, k], expected, rtol=1e-12, equal_nan=True)
    a = ItemOutcomes("test", "conv5", "map", "multilabel-voc", "L",
                     {"scores": scores, "targets": targets})
    full = [plain_voc_ap(scores[targets[:, k] != -1, k], targets[targets[:, k] != -1, k] == 1)
            for k in range(c)]
    assert paired.paired_delta(a, a, resamples=50).a == pytest.approx(100 * np.nanmean(full))


def test_weighted_miou_equals_confusion_of_repeated_images() -> None:
    rng = np.random.default_rng(8)
    n, k = 12, 4
    masks = [(rng.integers(0, k, (6, 6)), rng.integers(0, k, (6, 6))) for _ in range(n)]
    inter = np.zeros((n, k), np.int64)
    pred = np.zeros((n, k), np.int64)
    gt = np.zeros((n, k), np.int64)
    for i, (p, t) in enumerate(masks):
        cm = confusion_matrix(p, t, k)
        inter[i], pred[i], gt[i] = np.diag(cm), cm.sum(0), cm.sum(1)
    weights = paired.resample_weights(n, 5, rng)
    ours = paired.weighted_miou(inter, pred, gt, weights)
    for row in range(len(weights)):
        cm = sum(w * confusion_matrix(p, t, k)
                 for w, (p, t) in zip(weights[row], masks, strict=True))
        assert ours[row] == pytest.approx(segmentation_scores(cm)["miou"], rel=1e-12)


def test_bootstrap_deltas_match_a_plain_loop_with_the_same_draws() -> None:
    rng = np.random.default_rng(9)
    scores_a, scores_b = rng.random((40, 3)), rng.random((40, 3))
    targets = (rng.random((40, 3)) < 0.4).astype(np.int8)
    a = ItemOutcomes("test", "all", "map", "multilabel", "L",
                     {"scores": scores_a, "targets": targets})
    b = ItemOutcomes("test", "all", "map", "multilabel", "L",
                     {"scores": scores_b, "targets": targets})
    result = paired.paired_delta(a, b, resamples=300, seed=11)
    draw = np.random.default_rng(11)
    loop = []
    for _ in range(300):
        idx = draw.integers(0, 40, 40)
        t = targets[idx]
        ap_a = multilabel_ap(scores_a[idx], t.astype(np.int64), t != -1)
        ap_b = multilabel_ap(scores_b[idx], t.astype(np.int64), t != -1)
        loop.append(100 * (np.nanmean(ap_a) - np.nanmean(ap_b)))
    low, high = np.quantile(loop, [0.025, 0.975])
    assert (result.low, result.high) == pytest.approx((low, high), rel=1e-9)


def test_holm_matches_the_step_down_rule() -> None:
    p = [0.01, 0.04, 0.03, 0.005, 0.5]
    order = np.argsort(p)
    expected = [0.0] * len(p)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        expected[i] = running
    assert paired.holm(p) == pytest.approx(expected)
    assert paired.holm([]) == []


def test_unpairable_entries_are_refused() -> None:
    a = _correct(np.ones(10, bool), listing="A")
    b = _correct(np.ones(10, bool), listing="B")
    assert "listings" in paired.pairable(a, b)
    assert "numbers of items" in paired.pairable(a, _correct(np.ones(9, bool), listing="A"))
    with pytest.raises(ValueError):
        paired.paired_delta(a, b)


def test_seed_spread_and_text() -> None:
    spread = paired.seed_spread([1.0, 2.0, 3.0])
    assert (spread.n_seeds, spread.mean, spread.std) == (3, 2.0, 1.0)
    assert paired.seed_spread([1.0]) is None
    x = paired.PairedDelta("top1", 10, 50.0, 48.0, 2.0, 0.5, 3.5, 0.004, "McNemar exact",
                           100, 0)
    assert x.text() == "+2.0 [+0.5, +3.5] p=0.004" and x.verdict() == "A better"
