"""Shared plumbing of the frozen-backbone protocols (linear-conv, mlp): config fields, the
fast (cached features) vs faithful (augmented images, 10-crop) batch sources, and result rows."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import torch
from torchvision.transforms import v2

from dcbench.core.bounds import MAX_COUNT, MAX_WORKERS, bounded
from dcbench.core.errors import UserError
from dcbench.core.files import write_json
from dcbench.core.outcomes import ItemOutcomes, correct_outcomes
from dcbench.data import transforms as T
from dcbench.data.loader import DecodeReport
from dcbench.engine.resumable import status
from dcbench.engine.sharded import share_report
from dcbench.protocols.base import ProtocolConfig, Result, RunInfo, results_from_metrics
from dcbench.protocols.probe.batch_sources import ImageSource, TensorSource
from dcbench.protocols.probe.feature_cache import FeatureCache, dataset_fingerprint
from dcbench.protocols.probe.frozen_features import cached_features
from dcbench.protocols.probe.heads import OptimSettings
from dcbench.protocols.probe.pooling import PoolSpec
from dcbench.protocols.probe.selection import (
    SELECTION_PASSES,
    FitSettings,
    LayerOutcome,
    Source,
    heldout_split,
)
from dcbench.protocols.probe.splits import Sizes, Splits, load_splits, with_transform

if TYPE_CHECKING:
    from dcbench.models.backbone import Backbone


@dataclasses.dataclass
class FrozenProbeConfig(ProtocolConfig):
    """Training and evaluation settings shared by linear-conv and mlp (defaults: dc2018).

    `weight_decays` (and `lrs`) are candidates selected on a held-out `heldout_fraction` of
    the training set (seeded, stratified). `weight_decay_selection=fixed` uses the single
    `weight_decay` instead (1e-7: the official eval_linear.sh; the lr candidates and the
    epoch are still selected on held-out data). `fast` trains on cached center-crop features: no
    training augmentation and a single center crop at test instead of 10 crops, so it is a
    cheaper, different protocol (benchmarks/probes.py measures time and top-1 gap).
    `selection_pass`: `one` trains the selection and final heads from one pass per epoch
    (held-out rows masked out of the selection heads), `two` a select phase then a final
    phase, two trunk passes per epoch (probe/selection.py, docs/fidelity.md item 30).
    """

    # Keys added after runs were saved, with the value that reproduces a run saved without
    # them (`dcbench eval --resume` of an older run dir compares configs with these filled in).
    LEGACY_VALUES: ClassVar[dict[str, Any]] = {"selection_pass": "two"}

    lrs: list[float] = bounded(default_factory=lambda: [0.01], gt=0, le=10, min_len=1)
    momentum: float = bounded(0.9, ge=0, lt=1)
    weight_decays: list[float] = bounded(default_factory=lambda: [1e-7, 1e-4],
                                         ge=0, le=1, min_len=1)
    weight_decay_selection: Literal["heldout", "fixed"] = "heldout"
    weight_decay: float = bounded(1e-7, ge=0, le=1)
    schedule: Literal["sqrt", "step", "constant"] = "sqrt"
    milestones: list[int] = bounded(default_factory=list, ge=1, le=MAX_COUNT)
    gamma: float = bounded(0.1, ge=0, le=1)
    epochs: int = bounded(90, ge=1, le=MAX_COUNT)
    batch_size: int = bounded(256, ge=1, le=MAX_COUNT)
    eval_batch_size: int = bounded(128, ge=1, le=MAX_COUNT)
    train_crop: Literal["center-then-random", "random"] = "center-then-random"
    ten_crop: bool = True
    heldout_fraction: float = bounded(0.05, gt=0, lt=1)
    fast: bool = False
    selection_pass: str = bounded("one", choices=SELECTION_PASSES)
    eval_split: str = "val"
    workers: int = bounded(4, ge=0, le=MAX_WORKERS)


def check_config(cfg: FrozenProbeConfig) -> None:
    """Refuse settings that cannot run (before anything is written)."""
    if not 0.0 < cfg.heldout_fraction < 1.0:
        raise UserError(f"heldout_fraction must be in (0, 1), got {cfg.heldout_fraction}")
    if cfg.epochs < 1 or cfg.batch_size < 1 or cfg.eval_batch_size < 1:
        raise UserError("epochs, batch_size and eval_batch_size must be positive")
    if not cfg.lrs or not cfg.weight_decays:
        raise UserError("lrs and weight_decays need at least one candidate each")
    if cfg.selection_pass not in SELECTION_PASSES:
        raise UserError(f"selection_pass must be one or two, got {cfg.selection_pass!r}")
    if cfg.weight_decay_selection not in ("heldout", "fixed"):
        raise UserError(f"weight_decay_selection must be heldout or fixed, got "
                        f"{cfg.weight_decay_selection!r}")


def fit_settings(cfg: FrozenProbeConfig) -> FitSettings:
    """The optimisation settings a config describes ((lr, wd) candidates = the product)."""
    decays = cfg.weight_decays if cfg.weight_decay_selection == "heldout" else [cfg.weight_decay]
    return FitSettings(
        candidates=tuple((lr, wd) for lr in cfg.lrs for wd in decays),
        optim=OptimSettings(cfg.momentum, cfg.schedule, tuple(cfg.milestones), cfg.gamma),
        epochs=cfg.epochs, batch_size=cfg.batch_size, eval_batch_size=cfg.eval_batch_size,
        seed=cfg.seed, selection_pass=cfg.selection_pass,
    )


def train_transform(kind: str, sizes: Sizes) -> v2.Compose:
    """dc2018: Resize, CenterCrop(resize), RandomCrop, flip; goyal2019: Resize, RandomCrop, flip."""
    if kind == "center-then-random":
        return T.linear_train(sizes.crop, sizes.resize, mean=sizes.mean, std=sizes.std)
    return v2.Compose([
        v2.ToImage(), v2.Resize(sizes.resize, antialias=True), v2.RandomCrop(sizes.crop),
        v2.RandomHorizontalFlip(), v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(list(sizes.mean), list(sizes.std)),
    ])


def frozen_sources(
    model: Backbone,
    splits: Splits,
    cfg: FrozenProbeConfig,
    *,
    specs: dict[str, PoolSpec],
    featurize: Callable[[torch.Tensor], dict[str, torch.Tensor]],
    device: str,
    progress: bool,
    report: DecodeReport,
    cache: FeatureCache | None = None,
) -> tuple[Source, Source]:
    """(train, val) batch sources: cached center-crop tensors (`fast`) or augmented images
    through the frozen network with 10-crop (or center-crop) evaluation (faithful)."""
    sizes = Sizes.for_model(model)
    center = T.center_crop(sizes.crop, sizes.resize, mean=sizes.mean, std=sizes.std)
    if cfg.fast:
        desc = sizes.describe("center_crop")
        common = dict(cache=cache if cache is not None else FeatureCache(),
                      batch_size=cfg.eval_batch_size, device=device, progress=progress,
                      report=report, featurize=featurize, pipeline=cfg.input_pipeline)
        train_src = TensorSource(cached_features(
            model, with_transform(splits.train, center), specs, desc, desc="train features",
            **common), device)
        val_src = TensorSource(cached_features(
            model, with_transform(splits.val, center), specs, desc, desc="val features",
            **common), device)
        return train_src, val_src
    evaluation = (T.ten_crop(sizes.crop, sizes.resize, mean=sizes.mean, std=sizes.std)
                  if cfg.ten_crop else center)
    common = dict(featurize=featurize, specs=specs, eval_transform=evaluation,
                  eval_crops=10 if cfg.ten_crop else 1, device=device, workers=cfg.workers,
                  progress=progress, report=report, pipeline=cfg.input_pipeline)
    train_src = ImageSource(splits.train, train_transform=train_transform(cfg.train_crop, sizes),
                            **common)
    return train_src, ImageSource(splits.val, train_transform=None, **common)


def item_outcomes(outcomes: dict[str, LayerOutcome], splits: Splits,
                  seed: int) -> list[ItemOutcomes]:
    """The val per-item top-1 hits behind `top1` and `top1_best_epoch` of every layer, keyed
    by the val listing (paired intervals between runs on the same items)."""
    listing = dataset_fingerprint(splits.val.paths, list(splits.val.targets))
    return [correct_outcomes("val", layer, metric, listing, hits, seed)
            for layer, outcome in outcomes.items()
            for metric, hits in outcome.item_hits().items()]


def outcome_rows(info: RunInfo, outcomes: dict[str, LayerOutcome], work_dir: Path | None,
                 report: DecodeReport | None = None) -> list[Result]:
    """Result rows per layer and split; the selection record goes to `work_dir/selection.json`
    (and the undecodable files of `report`, if any, to stderr)."""
    share_report(report)  # under torchrun: every rank's undecodable files, listed once
    if report is not None and report.count:
        status(report.summary())
    rows: list[Result] = []
    record: dict[str, Any] = {}
    for layer, outcome in outcomes.items():
        for split, metrics in outcome.metrics().items():
            rows += results_from_metrics(info, metrics, split=split, layer=layer)
        record[layer] = outcome.record()
        status(f"{layer}: selected lr={outcome.lr:g} wd={outcome.weight_decay:g} "
            f"epoch {outcome.selected_epoch} (held-out top1 {outcome.heldout_top1:.2f}); "
            f"best val epoch {outcome.best_val_epoch}")
    if work_dir is not None:
        write_json(work_dir / "selection.json", record)
    return rows


def check_probe_data(data_dir: str | Path, cfg: FrozenProbeConfig) -> None:
    """`Protocol.check_data` of the frozen probes (linear-conv, mlp): the settings, the
    splits, and a held-out part for the selection, from the listings alone."""
    check_config(cfg)
    splits = load_splits(data_dir, cfg.eval_split)
    heldout_split(np.asarray(splits.train.targets), cfg.heldout_fraction, cfg.seed)


def prepare(model: Backbone, data_dir: str | Path, cfg: FrozenProbeConfig, device: str
            ) -> Splits:
    """Validate the config, load the splits and freeze the model on `device` in eval mode."""
    check_config(cfg)
    splits = load_splits(data_dir, cfg.eval_split)
    model.to(device).eval()
    for param in model.parameters():
        param.requires_grad_(False)
    return splits
