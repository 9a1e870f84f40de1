"""`voc07-svm`: linear SVMs on frozen pooled features, VOC2007 (Goyal et al. 2019 / VISSL).

Faithful to FSSB `tools/svm/train_svm_kfold.py` + `test_svm.py` and VISSL `train_svm.py`:
- features: every image squashed to the input size without a crop (VISSL: short side 256
  then 224x224; `goyal2019`: straight to the input size), taps pooled with the `goyal2019`
  table (AlexNet conv1-5 AvgPool 19/4, 12/3, 9/1, 9/1, 8/1; ResNet-50 conv1=res_conv1 and
  conv2-5=res2-res5, 9216/9216/8192/9216/8192 dims), per-sample L2 normalisation;
- one `LinearSVC` per class (squared hinge, L2, dual, tol 1e-4, max_iter 2000,
  class_weight {1: 2, -1: 1}) trained on trainval, where "difficult" counts as negative
  (FSSB/VISSL map every non-positive label to -1);
- the cost chosen per class by 3-fold CV average precision on trainval, then refitted on all
  of trainval; cost lists: `vissl` (default, 0.01..1000, 11 values), `caffe2` (the
  `goyal2019` dialect: 1e-7..100 plus 0.5^4..0.5^19), `mmselfsup` (1, 10, 100 plus halves);
- test AP per class VOC-style (all-point interpolated) on VOC2007 test with difficult left
  out; `map` = mean over the 20 classes. Rows in percent, one per class (`ap_<class>`).
Differs: AlexNet runs at 224 px (FSSB used 227); LinearSVC gets `random_state=seed` so runs
repeat exactly. Features go through the shared feature cache (`fast=true`); finished classes
are journaled in `work_dir/svm.jsonl` and skipped on `--resume`. Per-item outcomes: each
layer's test SVM scores behind `map` (`svm.outcomes`, kind `multilabel-voc`).
Schedules: `published`; `smoke` (built-in synthetic VOC): costs (0.1, 1, 10), one job.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dcbench.core.bounds import MAX_COUNT, MAX_IMAGE_SIDE, MAX_WORKERS, bounded
from dcbench.core.files import write_json
from dcbench.data.voc import VOC_CLASSES
from dcbench.engine.resumable import ResultJournal
from dcbench.engine.resumable import status as log
from dcbench.protocols.base import (
    CONV_LAYERS,
    Protocol,
    ProtocolConfig,
    Result,
    register_protocol,
    results_from_metrics,
)
from dcbench.protocols.probe.pooling import POOLING_TABLES
from dcbench.protocols.svm.core import (
    COST_LISTS,
    ClassFit,
    class_aps,
    l2_normalize,
    shared_fits,
    train_targets,
)
from dcbench.protocols.svm.outcomes import class_scores, svm_outcomes
from dcbench.protocols.svm.voc_features import svm_run_inputs

if TYPE_CHECKING:
    from dcbench.models.backbone import Backbone


@dataclasses.dataclass
class VOC07SVMConfig(ProtocolConfig):
    """VOC07 linear SVMs; defaults = VISSL's recipe (see the module docstring)."""

    layers: list[str] = bounded(default_factory=lambda: list(CONV_LAYERS), min_len=1)
    pooling: str = bounded("goyal2019", choices=POOLING_TABLES)
    resize_short: int | None = bounded(256, ge=16, le=MAX_IMAGE_SIDE)
    cost_list: str = bounded("vissl", choices=tuple(COST_LISTS))
    costs: list[float] = bounded(default_factory=list, gt=0, le=1e6)  # overrides cost_list
    folds: int = bounded(3, ge=2, le=1000)
    tol: float = bounded(1e-4, gt=0, le=1)
    max_iter: int = bounded(2000, ge=1, le=MAX_COUNT)
    positive_weight: float = bounded(2.0, gt=0, le=1e6)
    train_split: str = "trainval"
    test_split: str = "test"
    fast: bool = True  # read/fill the shared feature cache
    batch_size: int = bounded(64, ge=1, le=MAX_COUNT)
    # joblib workers for the per-class SVMs (-1: all cores)
    jobs: int = bounded(-1, ge=-1, le=MAX_WORKERS, exclude=(0,))


@register_protocol("voc07-svm")
class VOC07SVM(Protocol):
    """VOC2007 per-class linear SVMs on frozen pooled conv features (Goyal et al. 2019)."""

    Config = VOC07SVMConfig
    DIALECTS = {
        "dc2018": {},  # DeepCluster published no SVM protocol: VISSL's recipe
        "vissl": {},
        "goyal2019": {"cost_list": "caffe2", "resize_short": None},
        "mmselfsup": {"cost_list": "mmselfsup"},
    }
    SCHEDULES = {"published": {}, "smoke": {"costs": [0.1, 1.0, 10.0], "jobs": 1}}
    summary = "VOC2007 linear SVMs on frozen pooled conv features (cost by 3-fold CV), test mAP"

    def run(self, model: Backbone, data_dir: str | Path, config: VOC07SVMConfig, *,
            run_id: str, device: str, progress: bool, work_dir: Path | None) -> list[Result]:
        """Extract (or read cached) features, fit 20 SVMs per layer, score VOC07 test."""
        settings, info, train, test = svm_run_inputs(
            model, data_dir, config, self.name, train_split=config.train_split,
            test_split=config.test_split,
            run_id=run_id, device=device, progress=progress)
        journal = ResultJournal(work_dir / "svm.jsonl" if work_dir is not None else None,
                                config_hash=info.config_hash)
        targets = train_targets(train.labels)
        rows: list[Result] = []
        summary: dict[str, dict[str, float]] = {}
        for layer in config.layers:
            x_train = l2_normalize(train.features[layer])
            fits = {c: ClassFit.from_record(r) for c in range(len(VOC_CLASSES))
                    if (r := journal.get(f"{layer}/{c}")) is not None}
            todo = [c for c in range(len(VOC_CLASSES)) if c not in fits]
            fits.update(shared_fits(
                x_train, targets, settings, classes=todo, jobs=config.jobs,
                record=lambda c, fit, layer=layer: journal.record(f"{layer}/{c}",
                                                                  fit.to_record())))
            x_test = l2_normalize(test.features[layer])
            metrics = class_aps(fits, x_test, test.labels, VOC_CLASSES)
            self.keep_outcomes([svm_outcomes(layer, test.paths, test.labels,
                                             class_scores(fits, x_test), seed=config.seed)])
            finite = {k: 100.0 * v for k, v in metrics.items() if np.isfinite(v)}
            summary[layer] = {**finite, **{f"cost_{VOC_CLASSES[c]}": f.cost
                                           for c, f in fits.items()}}
            rows += results_from_metrics(info, finite, split="test", layer=layer)
            log(f"{self.name} [{layer}] VOC07 test mAP: {finite.get('map', float('nan')):.2f}")
        if work_dir is not None:
            write_json(work_dir / "metrics.json", summary)
        return rows
