"""One-vs-all linear SVMs on frozen features, as in Goyal et al. 2019 (FSSB) and VISSL.

Per class: scikit-learn `LinearSVC` (squared hinge, L2 penalty, dual, tol 1e-4,
max_iter 2000, class_weight {+1: 2, -1: 1}) on per-sample L2-normalised features; the cost
is chosen by k-fold cross-validation (sklearn `average_precision`) on the training set only,
then the SVM is refitted on the whole training set with that cost. Test AP is the VOC
all-point interpolated AP (FSSB/VISSL `get_precision_recall` + `calculate_ap`), with the
"difficult" entries left out. Classes are trained in parallel with joblib and, under
torchrun, dealt over the processes (`shared_fits`).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Iterator, Sequence

import numpy as np
from joblib import Parallel, delayed
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.svm import LinearSVC

from dcbench.core.dist_eval import check_all, gather_objects
from dcbench.core.distributed import current
from dcbench.core.errors import UserError, did_you_mean

# The halving tail FSSB (and MMSelfSup) always append to the command-line cost list.
HALVES = [0.5**x for x in range(4, 20)]
COST_LISTS: dict[str, list[float]] = {
    # VISSL `SVM.costs.costs_list` default (configs/config/benchmark/.../voc07 svm)
    "vissl": [0.01, 0.1, 1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 50.0, 100.0, 1000.0],
    # FSSB (Caffe2) README / scripts list 1e-7..100, plus the appended halves
    "caffe2": [1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0, *HALVES],
    # MMSelfSup's ported scripts: "1,10,100" plus the appended halves
    "mmselfsup": [1.0, 10.0, 100.0, *HALVES],
}


@dataclasses.dataclass(frozen=True)
class SVMSettings:
    """The LinearSVC recipe (defaults = FSSB/VISSL)."""

    costs: tuple[float, ...] = tuple(COST_LISTS["vissl"])
    folds: int = 3
    tol: float = 1e-4
    max_iter: int = 2000
    positive_weight: float = 2.0
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class ClassFit:
    """The outcome of one class: the chosen cost, its CV APs per cost, the fitted weights."""

    cost: float
    cv_ap: tuple[float, ...]
    coef: np.ndarray  # (D,)
    intercept: float

    def decision(self, features: np.ndarray) -> np.ndarray:
        """SVM scores w.x + b of (N, D) features."""
        return features @ self.coef + self.intercept

    def to_record(self) -> dict:
        """A JSON-able record (weights included, so a resumed run needs no refit)."""
        return {"cost": self.cost, "cv_ap": list(self.cv_ap), "coef": self.coef.tolist(),
                "intercept": self.intercept}

    @classmethod
    def from_record(cls, record: dict) -> ClassFit:
        """The fit back from `to_record`'s output."""
        return cls(record["cost"], tuple(record["cv_ap"]), np.asarray(record["coef"]),
                   record["intercept"])


def resolve_settings(cost_list: str, costs: Sequence[float], *, folds: int, tol: float,
                     max_iter: int, positive_weight: float, seed: int) -> SVMSettings:
    """Settings from a named cost list (or explicit `costs`), validated (UserError)."""
    if costs:
        chosen = [float(c) for c in costs]
    elif cost_list in COST_LISTS:
        chosen = COST_LISTS[cost_list]
    else:
        raise UserError(f"unknown cost_list {cost_list!r}; "
                        + did_you_mean(cost_list, list(COST_LISTS)))
    if min(chosen) <= 0 or folds < 2 or max_iter < 1 or positive_weight <= 0:
        raise UserError("SVM costs and positive_weight must be > 0, folds >= 2, max_iter >= 1")
    return SVMSettings(tuple(chosen), folds, tol, max_iter, positive_weight, seed)


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Per-sample L2 normalisation as FSSB/VISSL `normalize_features`: x / (||x|| + 1e-5)."""
    x = np.asarray(x, dtype=np.float32)
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-5)


def make_svc(cost: float, settings: SVMSettings) -> LinearSVC:
    """The FSSB/VISSL LinearSVC for one cost."""
    return LinearSVC(C=cost, loss="squared_hinge", penalty="l2", dual=True, tol=settings.tol,
                     max_iter=settings.max_iter, intercept_scaling=1.0,
                     class_weight={1: settings.positive_weight, -1: 1.0},
                     random_state=settings.seed)


def voc_ap(scores: np.ndarray, targets: np.ndarray) -> float:
    """VOC all-point interpolated AP of scores for binary targets (> 0 = positive).

    Precision is made monotone from the right, then summed over the recall steps.
    Returns NaN when there is no positive.
    """
    scores, positive = np.asarray(scores, np.float64), np.asarray(targets) > 0
    npos = int(positive.sum())
    if npos == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(positive[order])
    fp = np.cumsum(~positive[order])
    recall = np.concatenate([[0.0], tp / npos, [1.0]])
    precision = np.concatenate([[0.0], tp / np.maximum(tp + fp, 1e-12), [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.flatnonzero(recall[1:] != recall[:-1])
    return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))


def fit_class(features: np.ndarray, targets: np.ndarray, settings: SVMSettings,
              costs: Sequence[float] | None = None) -> ClassFit:
    """Choose the cost by stratified k-fold CV (AP) on (features, +-1 targets), then refit.

    With a single cost, or fewer positives/negatives than folds, CV is skipped and the
    first cost is used (recorded as CV AP NaN).
    """
    costs = list(costs or settings.costs)
    targets = np.where(np.asarray(targets) > 0, 1, -1)
    per_class = min(int((targets == 1).sum()), int((targets == -1).sum()))
    cv_ap = [float("nan")] * len(costs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if len(costs) > 1 and per_class >= settings.folds >= 2:
            folds = StratifiedKFold(settings.folds)
            cv_ap = [float(cross_val_score(make_svc(c, settings), features, targets, cv=folds,
                                           scoring="average_precision").mean()) for c in costs]
            best = costs[int(np.nanargmax(cv_ap))]
        else:
            best = costs[0]
        svc = make_svc(best, settings).fit(features, targets)
    return ClassFit(best, tuple(cv_ap), svc.coef_[0].astype(np.float64),
                    float(svc.intercept_[0]))


def fit_fixed(features: np.ndarray, targets: np.ndarray, cost: float,
              settings: SVMSettings) -> ClassFit:
    """One SVM at a given cost (no selection)."""
    return fit_class(features, targets, settings, costs=[cost])


def iter_fits(features: np.ndarray, targets: np.ndarray, settings: SVMSettings, *,
              classes: Sequence[int] | None = None, jobs: int = 1
              ) -> Iterator[tuple[int, ClassFit]]:
    """`fit_class` for each column of (N, C) +-1 targets (0 = left out), in parallel.

    Yields (class, fit) in class order as they finish, so callers can journal each one.
    """
    classes = list(range(targets.shape[1])) if classes is None else list(classes)

    def one(c: int) -> ClassFit:
        keep = targets[:, c] != 0
        return fit_class(features[keep], targets[keep, c], settings)

    fits = Parallel(n_jobs=jobs, return_as="generator")(delayed(one)(c) for c in classes)
    yield from zip(classes, fits, strict=True)


def shared_fits(features: np.ndarray, targets: np.ndarray, settings: SVMSettings, *,
                classes: Sequence[int] | None = None, jobs: int = 1,
                record: Callable[[int, ClassFit], None] | None = None) -> dict[int, ClassFit]:
    """`iter_fits` over the torchrun processes: the classes are independent, so rank r of N
    fits `classes[r::N]` (one process: all of them) and every rank gets every fit
    (`gather_objects`; each fit is computed once, on identical inputs, so the fits are
    those of one process). Returns {class: fit} in `classes` order. `record(class, fit)`
    sees each fit once on every rank: its own as they finish, the others after the gather
    (the journal; only rank 0 writes). A rank that fails stops every rank (`check_all`)."""
    info = current()
    classes = list(range(targets.shape[1])) if classes is None else list(classes)
    fits: dict[int, ClassFit] = {}
    error = None
    try:
        for c, fit in iter_fits(features, targets, settings,
                                classes=classes[info.rank::info.world_size], jobs=jobs):
            fits[c] = fit
            if record is not None:
                record(c, fit)
    except Exception as err:
        error = err
    check_all(error, info)
    if info.active:
        for part in gather_objects(fits, info):
            for c, fit in part.items():
                if c not in fits:
                    fits[c] = fit
                    if record is not None:
                        record(c, fit)
    return {c: fits[c] for c in classes}


def evaluate_ap(fit: ClassFit, features: np.ndarray, labels: np.ndarray) -> float:
    """VOC AP of one class on test features; labels in {1, -1, 0 = difficult (ignored)}."""
    keep = np.asarray(labels) != 0
    return voc_ap(fit.decision(features[keep]), labels[keep])


def train_targets(labels: np.ndarray) -> np.ndarray:
    """VOC labels {1, 0 = difficult, -1} -> SVM targets: positive +1, all else -1 (FSSB)."""
    return np.where(np.asarray(labels) == 1, 1, -1).astype(np.int8)


def class_aps(fits: dict[int, ClassFit], test: np.ndarray, labels: np.ndarray,
              names: Sequence[str]) -> dict[str, float]:
    """Per-class test AP (`ap_<name>`, difficult ignored) and their mean `map`, as fractions."""
    aps = [evaluate_ap(fits[c], test, labels[:, c]) for c in range(len(names))]
    finite = [a for a in aps if np.isfinite(a)]
    metrics = {"map": float(np.mean(finite)) if finite else float("nan")}
    metrics.update({f"ap_{name}": ap for name, ap in zip(names, aps, strict=True)})
    return metrics
