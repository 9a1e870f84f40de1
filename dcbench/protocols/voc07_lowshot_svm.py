"""`voc07-lowshot-svm`: VOC07 SVMs from k positives per class (Goyal et al. 2019 low-shot).

Faithful to FSSB `create_voc_low_shot_samples.py`, `train_svm_low_shot.py` and
`test_svm_low_shot.py` (and their VISSL/MMSelfSup ports): for each k in
{1, 2, 4, 8, 16, 32, 64, 96} and each of 5 independent samples, every class gets an SVM
trained on k drawn positives and (C - 1) * k drawn negatives (the SVM core, features and
pooling of `voc07-svm`; `conv5` = ResNet-50 res5 by default), tested on the full VOC2007
test set (difficult ignored). Rows (percent): layer `<tap>/k<k>`, one `map` per sample
(seed = seed + sample) and `map_mean` / `map_std` / `map_min` / `map_max` over samples.

Cost selection: FSSB trains every cost, scores each (sample, k, cost) on the test set
(`test_svm_low_shot.py`) and then, per k, keeps ONE cost for all samples: the argmax over
costs of the mean test mAP over the samples; mean/min/max/std are those of that cost, with
`np.std` (ddof=0) (`aggregate_low_shot_svm_stats.py`). That is the `goyal2019` / `mmselfsup`
dialects (`cost_selection=test`, `std_ddof=0`); the per-sample `map` rows are then each
sample's mAP at the chosen cost. The default (`dc2018`, dcbench's honest choice) picks each
class's cost by CV on its own low-shot training set (folds = min(3, k)); k = 1 cannot be
cross-validated and uses `single_shot_cost`; its std is the sample std (ddof=1). Draws are
saved to `work_dir/lowshot_samples.json`; pass `samples_file=PATH` to reuse published or
earlier draws. Finished (layer, k, sample) units are journaled and skipped on `--resume`.
Per-item outcomes: behind each per-sample `map` row (seed = seed + sample), the test SVM
scores at the reported cost (`svm.outcomes`, kind `multilabel-voc`), so `compare` gives
the item interval of the first common sample and the spread over samples apart (as probe
seeds); `map_mean` and the other statistics over samples have none. A resumed unit's
scores come from its SVMs refitted at the journaled per-class costs (seeded: the same fit).
Schedules: `published`; `smoke` (built-in synthetic VOC): k in (1, 2), 2 samples, costs
(0.1, 1, 10), one job.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from dcbench.core.bounds import MAX_COUNT, MAX_IMAGE_SIDE, MAX_WORKERS, bounded
from dcbench.core.errors import UserError
from dcbench.core.files import write_json
from dcbench.data.voc import VOC_CLASSES, VOCClassification
from dcbench.engine.resumable import ResultJournal
from dcbench.engine.resumable import status as log
from dcbench.protocols.base import (
    Protocol,
    ProtocolConfig,
    Result,
    register_protocol,
    results_from_metrics,
)
from dcbench.protocols.probe.pooling import POOLING_TABLES
from dcbench.protocols.svm.core import (
    COST_LISTS,
    SVMSettings,
    class_aps,
    fit_fixed,
    l2_normalize,
    shared_fits,
)
from dcbench.protocols.svm.lowshot import (
    draw_lowshot,
    draw_targets,
    feasible_shots,
    load_draws,
    save_draws,
)
from dcbench.protocols.svm.outcomes import class_scores, svm_outcomes
from dcbench.protocols.svm.voc_features import svm_run_inputs

if TYPE_CHECKING:
    from dcbench.models.backbone import Backbone


@dataclasses.dataclass
class VOC07LowShotSVMConfig(ProtocolConfig):
    """Low-shot VOC07 SVMs; defaults = FSSB's sampling with honest (CV) cost selection."""

    layers: list[str] = bounded(default_factory=lambda: ["conv5"], min_len=1)
    shots: list[int] = bounded(default_factory=lambda: [1, 2, 4, 8, 16, 32, 64, 96], ge=1,
                               le=MAX_COUNT, min_len=1)
    samples: int = bounded(5, ge=1, le=1000)
    samples_file: str = ""
    cost_selection: Literal["cv", "test"] = "cv"
    std_ddof: Literal[0, 1] = 1  # 0: np.std over samples, as FSSB/VISSL/MMSelfSup report
    single_shot_cost: float = bounded(1.0, gt=0, le=1e6)
    pooling: str = bounded("goyal2019", choices=POOLING_TABLES)
    resize_short: int | None = bounded(256, ge=16, le=MAX_IMAGE_SIDE)
    cost_list: str = bounded("vissl", choices=tuple(COST_LISTS))
    costs: list[float] = bounded(default_factory=list, gt=0, le=1e6)
    folds: int = bounded(3, ge=2, le=1000)
    tol: float = bounded(1e-4, gt=0, le=1)
    max_iter: int = bounded(2000, ge=1, le=MAX_COUNT)
    positive_weight: float = bounded(2.0, gt=0, le=1e6)
    fast: bool = True
    batch_size: int = bounded(64, ge=1, le=MAX_COUNT)
    jobs: int = bounded(-1, ge=-1, le=MAX_WORKERS, exclude=(0,))


def summarize(values: list[float] | np.ndarray, ddof: int = 1) -> dict[str, float]:
    """mean, std (`ddof`; 0 for one value), min and max over the samples."""
    arr = np.asarray(values, dtype=np.float64)
    return {"map_mean": float(arr.mean()), "map_std": float(arr.std(ddof=ddof))
            if arr.size > ddof else 0.0, "map_min": float(arr.min()), "map_max": float(arr.max())}


def select_cost_stats(per_cost: np.ndarray, ddof: int) -> tuple[int, dict[str, float]]:
    """FSSB's low-shot aggregation for one k: (samples, costs) test mAPs -> the index of the
    cost with the highest mean over samples (first one on ties, as `np.argmax`) and the
    mean/std/min/max of that cost's column."""
    matrix = np.asarray(per_cost, dtype=np.float64)
    chosen = int(np.argmax(matrix.mean(axis=0)))
    return chosen, summarize(matrix[:, chosen], ddof)


def lowshot_map(x_train: np.ndarray, targets: np.ndarray, x_test: np.ndarray,
                test_labels: np.ndarray, settings: SVMSettings, k: int, selection: str,
                single_shot_cost: float, jobs: int) -> list[float]:
    """Pure core: test mAPs (fractions) of one (sample, k).

    `selection=test`: one mAP per cost of `settings.costs` (every class at that cost; the
    cost is chosen later across samples by `select_cost_stats`). `cv`: one mAP, each class
    at its cross-validated cost.
    """
    return [m for m, _, _ in lowshot_fits(x_train, targets, x_test, test_labels, settings, k,
                                          selection, single_shot_cost, jobs)]


def lowshot_fits(x_train: np.ndarray, targets: np.ndarray, x_test: np.ndarray,
                 test_labels: np.ndarray, settings: SVMSettings, k: int, selection: str,
                 single_shot_cost: float, jobs: int
                 ) -> list[tuple[float, np.ndarray, list[float]]]:
    """`lowshot_map` with, for each mAP, the (N, C) test scores behind it and each class's
    cost (the per-item outcomes; the costs let a resumed run score the same SVMs again)."""
    if selection == "test":
        out = []
        for cost in settings.costs:
            fixed = dataclasses.replace(settings, costs=(cost,))
            fits = shared_fits(x_train, targets, fixed, jobs=jobs)
            out.append((class_aps(fits, x_test, test_labels, VOC_CLASSES)["map"],
                        class_scores(fits, x_test), [cost] * len(VOC_CLASSES)))
        return out
    if k < 2:
        settings = dataclasses.replace(settings, costs=(single_shot_cost,))
    else:
        settings = dataclasses.replace(settings, folds=min(settings.folds, k))
    fits = shared_fits(x_train, targets, settings, jobs=jobs)
    return [(class_aps(fits, x_test, test_labels, VOC_CLASSES)["map"],
             class_scores(fits, x_test), [fits[c].cost for c in range(len(VOC_CLASSES))])]


def refit_scores(x_train: np.ndarray, targets: np.ndarray, x_test: np.ndarray,
                 costs: list[float], settings: SVMSettings) -> np.ndarray:
    """(N, C) test scores of each class's SVM refitted at its recorded cost: the SVMs of a
    journaled unit again (LinearSVC is seeded, so the same fit, the same scores)."""
    fits = {c: fit_fixed(x_train[targets[:, c] != 0], targets[targets[:, c] != 0, c],
                         float(cost), settings) for c, cost in enumerate(costs)}
    return class_scores(fits, x_test)


_NO_K = ("{name}: no k in shots={shots} can be drawn (a class has fewer images, or the samples "
         "file lacks it)")


@register_protocol("voc07-lowshot-svm")
class VOC07LowShotSVM(Protocol):
    """VOC2007 low-shot SVMs, k positives per class, 5 samples, full-test mAP statistics."""

    Config = VOC07LowShotSVMConfig
    DIALECTS = {
        "dc2018": {},
        "goyal2019": {"cost_list": "caffe2", "resize_short": None, "cost_selection": "test",
                      "std_ddof": 0},
        "mmselfsup": {"cost_list": "mmselfsup", "cost_selection": "test", "std_ddof": 0},
    }
    SCHEDULES = {"published": {},
                 "smoke": {"shots": [1, 2], "samples": 2, "costs": [0.1, 1.0, 10.0], "jobs": 1}}
    summary = "VOC2007 low-shot linear SVMs (k = 1..96 positives, 5 samples), test mAP"

    def check_data(self, data_dir: str | Path, config: VOC07LowShotSVMConfig) -> None:
        """A k of `shots` every class can fill: in the samples file when given, else in the
        VOC2007 trainval annotations (images that do not decode are found by the run)."""
        if config.samples_file:
            draws = load_draws(Path(config.samples_file), VOC_CLASSES)
            shots = [k for k in config.shots if all(k in d for d in draws)]
        else:
            shots = feasible_shots(VOCClassification(data_dir, 2007, "trainval").labels,
                                   config.shots)
        if not shots:
            raise UserError(_NO_K.format(name=self.name, shots=config.shots))

    def run(self, model: Backbone, data_dir: str | Path, config: VOC07LowShotSVMConfig, *,
            run_id: str, device: str, progress: bool,
            work_dir: Path | None) -> list[Result]:
        """Draw (or read) the samples, fit the SVMs per (layer, k, sample), score VOC07 test."""
        given = load_draws(Path(config.samples_file), VOC_CLASSES) if config.samples_file \
            else None  # a bad file is refused before the features are extracted
        settings, info, train, test = svm_run_inputs(
            model, data_dir, config, self.name, train_split="trainval", test_split="test",
            run_id=run_id, device=device, progress=progress)
        saved = work_dir / "lowshot_samples.json" if work_dir is not None else None
        if given is not None:
            draws = given
        elif saved is not None and saved.is_file():
            draws = load_draws(saved, VOC_CLASSES)  # resume: the same draws
        else:
            draws, skipped = draw_lowshot(train.labels, train.ids, VOC_CLASSES, config.shots,
                                          config.samples, config.seed)
            if skipped:
                log(f"{self.name}: skipping k={skipped} (a class has too few images)")
        if saved is not None:
            save_draws(saved, draws, VOC_CLASSES, config.seed)
        journal = ResultJournal(work_dir / "lowshot.jsonl" if work_dir is not None else None,
                                config_hash=info.config_hash)
        rows: list[Result] = []
        summary: dict[str, dict[str, float]] = {}
        for layer in config.layers:
            x_train = l2_normalize(train.features[layer])
            x_test = l2_normalize(test.features[layer])
            shots = [k for k in config.shots if all(k in d for d in draws)]
            if not shots:
                raise UserError(_NO_K.format(name=self.name, shots=config.shots))
            for k in shots:
                per_sample, scores = [], []
                for s, draw in enumerate(draws):
                    key = f"{layer}/k{k}/sample{s}"
                    done = journal.get(key)
                    targets = draw_targets(draw[k], train.ids, VOC_CLASSES)
                    fresh = None
                    if not isinstance(done, dict) or "map_per_cost" not in done:  # older record
                        fresh = lowshot_fits(x_train, targets, x_test, test.labels, settings,
                                             k, config.cost_selection,
                                             config.single_shot_cost, config.jobs)
                        done = {"map_per_cost": [100.0 * m for m, _, _ in fresh],
                                "costs_per_cost": [c for _, _, c in fresh]}
                        journal.record(key, done)
                    per_sample.append(done["map_per_cost"])
                    scores.append((targets, fresh, done.get("costs_per_cost")))
                chosen, stats = select_cost_stats(np.asarray(per_sample), config.std_ddof)
                for s, maps in enumerate(per_sample):
                    rows += results_from_metrics(info, {"map": maps[chosen]}, split="test",
                                                 layer=f"{layer}/k{k}", seed=config.seed + s)
                    targets, fresh, costs = scores[s]
                    if fresh is not None:
                        behind = fresh[chosen][1]
                    elif costs is not None:  # a resumed unit: its SVMs refitted
                        behind = refit_scores(x_train, targets, x_test, costs[chosen], settings)
                    else:  # journaled by an older version: no costs recorded, no outcomes
                        continue
                    self.keep_outcomes([svm_outcomes(f"{layer}/k{k}", test.paths, test.labels,
                                                     behind, seed=config.seed + s)])
                if config.cost_selection == "test":
                    stats["cost"] = settings.costs[chosen]
                summary[f"{layer}/k{k}"] = stats
                rows += results_from_metrics(info, {m: v for m, v in stats.items()
                                                    if m != "cost"},
                                             split="test", layer=f"{layer}/k{k}")
                log(f"{self.name} [{layer}] k={k}: mAP {stats['map_mean']:.2f} +- "
                    f"{stats['map_std']:.2f} (min {stats['map_min']:.2f}, max "
                    f"{stats['map_max']:.2f}) over {len(per_sample)} samples")
        if work_dir is not None:
            write_json(work_dir / "metrics.json", summary)
        return rows
