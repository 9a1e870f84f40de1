"""`mlp`: fc6-fc8 retrained from scratch on the frozen conv layers (thesis Table 5.2).

The conv trunk (Sobel, convs, BN in eval mode, final pooling to the classifier grid) is
frozen; a fresh copy of the network's own classifier (Dropout-fc6-ReLU-Dropout-fc7-ReLU,
official N(0, 0.01) init) plus a new fc8 is trained. Top-1 with 10-crop testing. The thesis
reports the best of 90 epochs; the optimiser is not published, so the defaults here are
dcbench's (documented): SGD lr 0.01, momentum 0.9, wd in {1e-4, 5e-4} selected on held-out
training data, lr x0.1 at epochs 30 and 60, batch 256, the linear-conv train crops. As for
linear-conv, the selection and final heads train from one pass per epoch by default
(`selection_pass=one`; `two`: a select phase, then a final phase; docs/fidelity.md item 30).
Needs a backbone with an fc6/fc7 classifier (AlexNet, VGG16); ResNets are refused.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch import nn

from dcbench.core.bounds import MAX_COUNT, bounded
from dcbench.core.errors import UserError
from dcbench.data.loader import DecodeReport
from dcbench.protocols.base import Protocol, Result, register_protocol, run_info
from dcbench.protocols.probe.frozen_fit import (
    FrozenProbeConfig,
    check_probe_data,
    fit_settings,
    frozen_sources,
    item_outcomes,
    outcome_rows,
    prepare,
)
from dcbench.protocols.probe.pooling import PoolSpec
from dcbench.protocols.probe.selection import FitSettings, LayerOutcome, Source, select_and_fit

if TYPE_CHECKING:
    from collections.abc import Callable

    from dcbench.models.backbone import Backbone

INPUT_KEY = "fc6_input"  # the flattened, pooled conv5 grid the classifier reads
LAYER_LABEL = "fc6-8"  # what the result rows call the trained part


@dataclasses.dataclass
class MLPConfig(FrozenProbeConfig):
    """mlp settings (see the module docstring for which are published and which are ours)."""

    weight_decays: list[float] = bounded(default_factory=lambda: [1e-4, 5e-4],
                                         ge=0, le=1, min_len=1)
    schedule: Literal["sqrt", "step", "constant"] = "step"
    milestones: list[int] = bounded(default_factory=lambda: [30, 60], ge=1, le=MAX_COUNT)


def check_mlp_backbone(model: Backbone) -> None:
    """Refuse backbones without the AlexNet/VGG `features` + `avgpool` + `classifier` layout."""
    if not all(hasattr(model, a) for a in ("features", "avgpool", "classifier")):
        raise UserError(
            f"mlp retrains fc6-fc8 and needs an AlexNet or VGG16 backbone; "
            f"{model.config.get('arch')} has no fc6/fc7 classifier (use linear-conv)"
        )


def mlp_featurizer(model: Backbone) -> Callable[[torch.Tensor], dict[str, torch.Tensor]]:
    """images -> {'fc6_input': flattened pooled conv5 grid} through the frozen trunk."""

    def featurize(images: torch.Tensor) -> dict[str, torch.Tensor]:
        model.eval()
        x = model.sobel(images) if getattr(model, "sobel", None) is not None else images
        x = model.avgpool(model.features(x))
        return {INPUT_KEY: torch.flatten(x, 1)}

    return featurize


def fresh_mlp(classifier: nn.Sequential, num_classes: int) -> nn.Sequential:
    """A re-initialised copy of fc6-fc7 (N(0, 0.01) weights, zero bias) plus a new fc8."""
    head = copy.deepcopy(classifier)
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    for layer in linears:
        layer.weight.requires_grad_(True)
        layer.bias.requires_grad_(True)
        with torch.no_grad():
            layer.weight.normal_(0.0, 0.01)
            layer.bias.zero_()
    fc8 = nn.Linear(linears[-1].out_features, num_classes)
    with torch.no_grad():
        fc8.weight.normal_(0.0, 0.01)
        fc8.bias.zero_()
    return nn.Sequential(head, fc8)


def mlp_probe(train: Source, val: Source, train_labels: np.ndarray, classifier: nn.Sequential,
              num_classes: int, settings: FitSettings, heldout_fraction: float, *,
              device: str = "cpu", work_dir: Path | None = None, progress: bool = False
              ) -> LayerOutcome:
    """Pure core: batches of the frozen fc6 input in, the selected fresh-MLP outcome out."""
    outcomes = select_and_fit([INPUT_KEY], lambda _: fresh_mlp(classifier, num_classes), train,
                              val, train_labels, settings, heldout_fraction, device=device,
                              work_dir=work_dir, progress=progress)
    return outcomes[INPUT_KEY]


@register_protocol("mlp")
class MLP(Protocol):
    """fc6-fc8 retrained on frozen conv1-5, top-1 with 10-crop (thesis Table 5.2)."""

    Config = MLPConfig
    summary = "fc6-fc8 retrained from scratch on frozen conv layers (Table 5.2)"
    # No faithful-2018: the 2018 code has no fc6-fc8 probe script to be faithful to.
    DIALECTS: dict[str, dict[str, Any]] = {"dc2018": {}}
    # smoke: minutes on the built-in 64-px data; a 3-layer MLP from N(0, 0.01) needs larger
    # steps than 0.01 to leave chance level within ~150 iterations, so lr 0.05/0.1 compete.
    SCHEDULES: dict[str, dict[str, Any]] = {
        "published": {},
        "smoke": {"epochs": 20, "batch_size": 64, "eval_batch_size": 64, "lrs": [0.05, 0.1],
                  "milestones": [14, 18], "heldout_fraction": 0.2, "workers": 0},
    }

    def check_data(self, data_dir: str | Path, config: MLPConfig) -> None:
        """The settings, the splits and a held-out part (`check_probe_data`)."""
        check_probe_data(data_dir, config)

    def run(self, model: Backbone, data_dir: str | Path, config: MLPConfig, *, run_id: str,
            device: str, progress: bool, work_dir: Path | None) -> list[Result]:
        """Select wd/epoch on held-out training data, report val top-1 (selected and best)."""
        check_mlp_backbone(model)
        splits = prepare(model, data_dir, config, device)
        report = DecodeReport()
        train_src, val_src = frozen_sources(
            model, splits, config, specs={INPUT_KEY: PoolSpec("none")},
            featurize=mlp_featurizer(model), device=device, progress=progress, report=report)
        outcome = mlp_probe(train_src, val_src, splits.train.targets, model.classifier,
                            splits.num_classes, fit_settings(config), config.heldout_fraction,
                            device=device, work_dir=work_dir, progress=progress)
        info = run_info(model, self.name, config, run_id=run_id, device=device,
                        dataset=splits.name)
        self.keep_outcomes(item_outcomes({LAYER_LABEL: outcome}, splits, config.seed))
        return outcome_rows(info, {LAYER_LABEL: outcome}, work_dir, report)
