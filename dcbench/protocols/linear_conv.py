"""`linear-conv`: linear classifiers on each frozen conv layer (thesis Tables 5.3/5.4, ECCV
Table 1), on ImageNet-style folders or Places205 list files.

dc2018 (default, official `eval_linear.py` + `eval_linear.sh`): AvgPool table (6,6,3) (4,4,0)
(3,3,1) (3,3,1) (2,2,0) -> 9600/9216/9600/9600/9216 for AlexNet, BN in eval mode, no BN head,
SGD lr 0.01 momentum 0.9, lr_t = lr0 / sqrt(1 + lr0 wd t), 90 epochs, batch 256, train crops
Resize-CenterCrop-RandomCrop-flip, 10-crop test with softmax averaging. The script's wd is
1e-7 and the code default 1e-4: both are candidates, selected on held-out training data.
goyal2019 (VISSL): AvgPool (19,4) (12,3) (9,1) (9,1) (8,1), affine-free BN before the linear
layer, wd 5e-4, 28 epochs with lr x0.1 at 8/16/24, Resize-RandomCrop-flip, single center crop.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dcbench.core.errors import UserError
from dcbench.protocols.base import CONV_LAYERS, Protocol, Result, register_protocol, run_info
from dcbench.protocols.probe.feature_cache import FeatureSet
from dcbench.protocols.probe.frozen_features import Sizes, stratified_split, tap_featurizer
from dcbench.protocols.probe.frozen_fit import FrozenProbeConfig, fit_frozen, outcome_rows, prepare
from dcbench.protocols.probe.pooling import model_pool_specs
from dcbench.protocols.probe.heads import LinearHead
from dcbench.protocols.probe.selection import FitSettings, LayerOutcome, fit_with_selection
from dcbench.protocols.probe.batch_sources import TensorSource

if TYPE_CHECKING:
    from dcbench.models.backbone import Backbone



@dataclasses.dataclass
class LinearConvConfig(FrozenProbeConfig):
    """linear-conv settings; `pooling` names the table (see protocols.pooling), `bn_head`
    adds goyal2019's affine-free BatchNorm in front of the linear layer."""

    layers: list[str] = dataclasses.field(default_factory=lambda: list(CONV_LAYERS))
    pooling: str = "dc2018"
    bn_head: bool = False


def linear_probe(
    train: dict[str, FeatureSet],
    val: dict[str, FeatureSet],
    num_classes: int,
    settings: FitSettings,
    heldout_fraction: float,
    *,
    bn_head: bool = False,
    work_dir: Path | None = None,
) -> dict[str, LayerOutcome]:
    """Pure core: pooled features per layer in, selected/best-epoch outcomes per layer out."""
    train_src, val_src = TensorSource(train), TensorSource(val)
    first = next(iter(train.values()))
    labels = first.labels.numpy()
    rel_train, rel_held = stratified_split(labels, heldout_fraction, settings.seed)
    positions = first.indices.numpy()
    dims = {layer: feats.features.shape[1] for layer, feats in train.items()}
    return fit_with_selection(
        list(train), lambda layer: LinearHead(dims[layer], num_classes, bn_head), train_src,
        val_src, positions[rel_train], positions[rel_held], settings, work_dir=work_dir)


@register_protocol("linear-conv")
class LinearConv(Protocol):
    """Linear probes on frozen conv1..conv5 (BN in eval mode), features pooled to ~9-10k."""

    Config = LinearConvConfig
    summary = "linear classifiers on frozen conv layers (Tables 5.3/5.4, ECCV Table 1)"
    DIALECTS: dict[str, dict[str, Any]] = {
        "dc2018": {},
        "goyal2019": {
            "pooling": "goyal2019", "bn_head": True, "weight_decays": [5e-4],
            "schedule": "step", "milestones": [8, 16, 24], "epochs": 28,
            "train_crop": "random", "ten_crop": False,
        },
    }
    # smoke: minutes on the built-in 64-px data (fewer epochs, smaller batches, a larger
    # held-out share so selection has enough images, no loader workers).
    SCHEDULES: dict[str, dict[str, Any]] = {
        "published": {},
        "smoke": {"epochs": 10, "batch_size": 64, "eval_batch_size": 64, "lrs": [0.01],
                  "milestones": [5, 8], "heldout_fraction": 0.2, "workers": 0},
    }

    def run(self, model: Backbone, data_dir: str | Path, config: LinearConvConfig, *,
            run_id: str, device: str, progress: bool, work_dir: Path | None) -> list[Result]:
        """Pool each tap per the table, select on held-out, report val at selected/best epoch."""
        if config.pooling not in ("dc2018", "goyal2019"):
            raise UserError(f"unknown pooling table {config.pooling!r}; valid: dc2018, goyal2019")
        model.check_layers(config.layers)
        splits = prepare(model, data_dir, config, device)
        sizes = Sizes.for_model(model)
        specs = model_pool_specs(model, list(config.layers), sizes.crop, config.pooling)
        shapes = model.feature_shapes(list(config.layers), sizes.crop)
        dims = {layer: spec.output_dim(shapes[layer]) for layer, spec in specs.items()}
        outcomes = fit_frozen(
            model, splits, config, specs=specs,
            featurize=tap_featurizer(model, config.layers),
            make_head=lambda layer: LinearHead(dims[layer], splits.num_classes, config.bn_head),
            device=device, progress=progress, work_dir=work_dir,
        )
        info = run_info(model, self.name, config, run_id=run_id, device=device,
                        dataset=splits.name)
        return outcome_rows(info, outcomes, work_dir)
