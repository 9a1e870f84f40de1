"""`linear-conv`: linear classifiers on each frozen conv layer (thesis Tables 5.3/5.4, ECCV
Table 1), on ImageNet-style folders or Places205 list files.

dc2018 (default, official `eval_linear.py` + `eval_linear.sh`): AvgPool table (6,6,3) (4,4,0)
(3,3,1) (3,3,1) (2,2,0) -> 9600/9216/9600/9600/9216 for AlexNet, BN in eval mode, no BN head,
SGD lr 0.01 momentum 0.9, lr_t = lr0 / sqrt(1 + lr0 wd t), 90 epochs, batch 256, train crops
Resize-CenterCrop-RandomCrop-flip, 10-crop test with softmax averaging. The script's wd is
1e-7 and the code default 1e-4: both are candidates, selected on held-out training data
(`weight_decay_selection=heldout`; `fixed` trains with `weight_decay` alone).
goyal2019 (Goyal et al. 2019 / VISSL, ImageNet): AvgPool (19,4) (12,3) (9,1) (9,1) (8,1),
an affine-free per-channel BatchNorm (BatchNorm2d on the pooled map) before the linear
layer, wd 5e-4, 28 epochs with lr x0.1 at 8/16/24, Resize-RandomCrop-flip, single center
crop. goyal2019-places205: the same with VISSL's Places205 schedule, 14 epochs, x0.1 at
4/8/12.
faithful-2018: dc2018 with every switch at the 2018 code's behaviour: the single fixed wd
1e-7 of eval_linear.sh (`weight_decay_selection=fixed`); it keeps the two-pass selection
(`selection_pass=two`), so its numbers are those of dcbench before the one-pass form.
Every dialect selects on held-out data; by default (`selection_pass=one`) the selection and
final heads train from one pass per epoch (probe/one_pass.py, docs/fidelity.md item 30).

Data flow: pooled taps -> batch sources (cached tensors with `fast`, else images through the
frozen net) -> `linear_probe` (held-out selection, retrain, val curve) -> result rows.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from dcbench.core.bounds import bounded
from dcbench.core.errors import UserError
from dcbench.core.sync_bn import BN_SYNC_CHOICES, apply_bn_sync
from dcbench.data.loader import DecodeReport
from dcbench.engine.resumable import status
from dcbench.protocols.base import CONV_LAYERS, Protocol, Result, register_protocol, run_info
from dcbench.protocols.probe.frozen_features import tap_featurizer
from dcbench.protocols.probe.frozen_fit import (
    FrozenProbeConfig,
    check_probe_data,
    fit_settings,
    frozen_sources,
    item_outcomes,
    outcome_rows,
    prepare,
)
from dcbench.protocols.probe.heads import LinearHead
from dcbench.protocols.probe.pooling import POOLING_TABLES, model_pool_specs
from dcbench.protocols.probe.selection import FitSettings, LayerOutcome, Source, select_and_fit
from dcbench.protocols.probe.splits import Sizes

if TYPE_CHECKING:
    from dcbench.models.backbone import Backbone


@dataclasses.dataclass
class LinearConvConfig(FrozenProbeConfig):
    """linear-conv settings; `pooling` names the table (see probe/pooling.py), `bn_head`
    adds goyal2019's affine-free per-channel BatchNorm in front of the linear layer;
    `bn_sync` (under torchrun only): that BatchNorm's training statistics are the global
    batch's (`global`, one process's) or each rank's slice's (`rank`, core/sync_bn.py)."""

    # an older run dir (saved without bn_sync) normalised each rank's slice under torchrun
    LEGACY_VALUES: ClassVar[dict[str, Any]] = {**FrozenProbeConfig.LEGACY_VALUES,
                                               "bn_sync": "rank"}
    # `global` is what one process computes: left out of the config hash, so the rows
    # of runs made before the key existed stay current
    HASH_DEFAULTS: ClassVar[dict[str, Any]] = {"bn_sync": "global"}

    layers: list[str] = bounded(default_factory=lambda: list(CONV_LAYERS), min_len=1)
    pooling: str = bounded("dc2018", choices=POOLING_TABLES)
    bn_head: bool = False
    bn_sync: str = bounded("global", choices=BN_SYNC_CHOICES)


def linear_probe(
    train: Source,
    val: Source,
    train_labels: np.ndarray,
    num_classes: int,
    settings: FitSettings,
    heldout_fraction: float,
    *,
    pooled_shapes: dict[str, tuple[int, ...]],
    bn_head: bool = False,
    bn_sync: str = "global",
    device: str = "cpu",
    work_dir: Path | None = None,
    progress: bool = False,
) -> dict[str, LayerOutcome]:
    """Pure core: batches of pooled features per layer in, selected/best-epoch outcomes out.

    `pooled_shapes[layer]` is the pooled (C, H, W) map (or (D,)): the head's input size and,
    with `bn_head`, the channels its per-channel BatchNorm normalises (over the global
    batch under torchrun with `bn_sync` `global`).
    """

    def make_head(layer: str) -> LinearHead:
        shape = pooled_shapes[layer]
        head = LinearHead(math.prod(shape), num_classes, bn_head, shape)
        apply_bn_sync(head, bn_sync)
        return head

    return select_and_fit(list(pooled_shapes), make_head, train, val, train_labels, settings,
                          heldout_fraction, device=device, work_dir=work_dir,
                          progress=progress)


# Goyal et al. 2019 / VISSL's AlexNet ImageNet linear benchmark.
GOYAL2019: dict[str, Any] = {
    "pooling": "goyal2019", "bn_head": True, "weight_decays": [5e-4],
    "schedule": "step", "milestones": [8, 16, 24], "epochs": 28,
    "train_crop": "random", "ten_crop": False,
}


@register_protocol("linear-conv")
class LinearConv(Protocol):
    """Linear probes on frozen conv1..conv5 (BN in eval mode), features pooled to ~9-10k."""

    Config = LinearConvConfig
    summary = "linear classifiers on frozen conv layers (Tables 5.3/5.4, ECCV Table 1)"
    DIALECTS: dict[str, dict[str, Any]] = {
        "dc2018": {},
        "goyal2019": GOYAL2019,
        "goyal2019-places205": {**GOYAL2019, "milestones": [4, 8, 12], "epochs": 14},
        "faithful-2018": {"weight_decay_selection": "fixed", "weight_decay": 1e-7,
                          "selection_pass": "two"},
    }
    # smoke: minutes on the built-in 64-px data (fewer epochs, smaller batches, a larger
    # held-out share so selection has enough images, no loader workers).
    SCHEDULES: dict[str, dict[str, Any]] = {
        "published": {},
        "smoke": {"epochs": 10, "batch_size": 64, "eval_batch_size": 64, "lrs": [0.01],
                  "milestones": [5, 8], "heldout_fraction": 0.2, "workers": 0},
    }

    def check_data(self, data_dir: str | Path, config: LinearConvConfig) -> None:
        """The settings, the splits and a held-out part (`check_probe_data`)."""
        check_probe_data(data_dir, config)

    def run(self, model: Backbone, data_dir: str | Path, config: LinearConvConfig, *,
            run_id: str, device: str, progress: bool, work_dir: Path | None) -> list[Result]:
        """Pool each tap per the table, select on held-out, report val at selected/best epoch."""
        if config.pooling not in POOLING_TABLES:
            raise UserError(f"unknown pooling table {config.pooling!r}; valid: dc2018, goyal2019")
        model.check_layers(config.layers)
        splits = prepare(model, data_dir, config, device)
        if config.dialect == "goyal2019" and "places" in splits.name.lower():
            status("linear-conv: goyal2019 is the ImageNet schedule; Places205 under Goyal et al. "
                   "/ VISSL is --dialect goyal2019-places205 (14 epochs, x0.1 at 4/8/12)")
        crop = Sizes.for_model(model).crop
        specs = model_pool_specs(model, list(config.layers), crop, config.pooling)
        shapes = model.feature_shapes(list(config.layers), crop)
        report = DecodeReport()
        train_src, val_src = frozen_sources(
            model, splits, config, specs=specs, featurize=tap_featurizer(model, config.layers),
            device=device, progress=progress, report=report)
        pooled = {layer: spec.output_shape(shapes[layer]) for layer, spec in specs.items()}
        outcomes = linear_probe(
            train_src, val_src, splits.train.targets, splits.num_classes, fit_settings(config),
            config.heldout_fraction, pooled_shapes=pooled, bn_head=config.bn_head,
            bn_sync=config.bn_sync, device=device, work_dir=work_dir, progress=progress)
        info = run_info(model, self.name, config, run_id=run_id, device=device,
                        dataset=splits.name)
        self.keep_outcomes(item_outcomes(outcomes, splits, config.seed))
        return outcome_rows(info, outcomes, work_dir, report)
