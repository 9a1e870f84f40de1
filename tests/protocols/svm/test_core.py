"""SVM core vs independent computations: VOC AP loop, sklearn GridSearchCV, sklearn normalize."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.preprocessing import normalize
from sklearn.svm import LinearSVC

from dcbench.core.errors import UserError
from dcbench.protocols.svm.core import (
    COST_LISTS,
    ClassFit,
    SVMSettings,
    evaluate_ap,
    fit_class,
    iter_fits,
    l2_normalize,
    resolve_settings,
    train_targets,
    voc_ap,
)


def reference_voc_ap(scores, targets):
    """VOC all-point AP by loops: P/R per rank, right-to-left max, sum over recall changes."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    npos = sum(1 for t in targets if t > 0)
    tp = fp = 0
    rec, prec = [], []
    for i in order:
        if targets[i] > 0:
            tp += 1
        else:
            fp += 1
        rec.append(tp / npos)
        prec.append(tp / (tp + fp))
    mrec, mpre = [0.0, *rec, 1.0], [0.0, *prec, 0.0]
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    return sum((mrec[i + 1] - mrec[i]) * mpre[i + 1] for i in range(len(mrec) - 1)
               if mrec[i + 1] != mrec[i])


def test_voc_ap_matches_loop():
    rng = np.random.default_rng(0)
    for _ in range(30):
        n = int(rng.integers(5, 60))
        scores = rng.normal(size=n)
        targets = np.where(rng.random(n) < 0.3, 1, -1)
        targets[0] = 1
        assert voc_ap(scores, targets) == pytest.approx(reference_voc_ap(scores, targets))
    assert np.isnan(voc_ap(np.zeros(3), np.array([-1, -1, -1])))


def test_l2_normalize_matches_fssb_rule_and_sklearn():
    x = np.random.default_rng(1).normal(size=(7, 5))
    by_row = np.stack([row / (np.sqrt(sum(v * v for v in row)) + 1e-5) for row in x])
    assert np.allclose(l2_normalize(x), by_row, atol=1e-6)
    assert np.allclose(l2_normalize(x), normalize(x), atol=1e-4)
    assert not np.isnan(l2_normalize(np.zeros((2, 3)))).any()


def _toy(seed=0, n=90, d=12):
    rng = np.random.default_rng(seed)
    y = np.where(rng.random(n) < 0.35, 1, -1)
    x = rng.normal(size=(n, d)) + 0.8 * y[:, None] * rng.normal(size=d)
    return l2_normalize(x), y


def test_cost_chosen_like_gridsearch_and_refit_like_sklearn():
    x, y = _toy()
    settings = SVMSettings(costs=(0.01, 0.1, 1.0, 10.0), seed=0)
    fit = fit_class(x, y, settings)
    svc = LinearSVC(loss="squared_hinge", penalty="l2", dual=True, tol=1e-4, max_iter=2000,
                    class_weight={1: 2, -1: 1}, random_state=0)
    grid = GridSearchCV(svc, {"C": list(settings.costs)}, scoring="average_precision",
                        cv=StratifiedKFold(3), refit=True).fit(x, y)
    assert fit.cost == grid.best_params_["C"]
    assert np.allclose(fit.cv_ap, grid.cv_results_["mean_test_score"])
    assert np.allclose(fit.decision(x), grid.best_estimator_.decision_function(x), atol=1e-6)


def test_parallel_equals_serial_and_zero_targets_left_out():
    x, y = _toy(2)
    targets = np.stack([y, -y, y], axis=1)
    targets[:10, 2] = 0
    settings = SVMSettings(costs=(0.1, 1.0))
    serial = dict(iter_fits(x, targets, settings, jobs=1))
    parallel = dict(iter_fits(x, targets, settings, jobs=2))
    for c in range(3):
        assert np.allclose(serial[c].coef, parallel[c].coef)
    alone = fit_class(x[10:], y[10:], settings)
    assert np.allclose(serial[2].coef, alone.coef)


def test_difficult_is_negative_in_training_and_ignored_in_test():
    assert train_targets(np.array([1, 0, -1])).tolist() == [1, -1, -1]
    fit = ClassFit(1.0, (), np.array([1.0]), 0.0)
    feats = np.array([[3.0], [2.0], [1.0], [0.0]])
    # the difficult (0) top-scored image would be a false positive if it were counted
    assert evaluate_ap(fit, feats, np.array([0, 1, -1, 1])) == pytest.approx(
        reference_voc_ap([2.0, 1.0, 0.0], [1, -1, 1]))


def test_record_round_trip_and_settings_validation():
    fit = ClassFit(2.0, (0.5, 0.6), np.array([1.0, -2.0]), 0.25)
    back = ClassFit.from_record(fit.to_record())
    assert back.cost == 2.0 and np.allclose(back.coef, fit.coef) and back.intercept == 0.25
    assert resolve_settings("caffe2", [], folds=3, tol=1e-4, max_iter=2000,
                            positive_weight=2, seed=0).costs[:2] == (1e-7, 1e-6)
    assert len(COST_LISTS["caffe2"]) == 10 + 16 and len(COST_LISTS["vissl"]) == 11
    with pytest.raises(UserError, match="cost_list"):
        resolve_settings("nope", [], folds=3, tol=1e-4, max_iter=1, positive_weight=2, seed=0)
    with pytest.raises(UserError):
        resolve_settings("vissl", [-1], folds=3, tol=1e-4, max_iter=1, positive_weight=2, seed=0)
