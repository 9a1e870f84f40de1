"""Frozen pooled VOC07 features for the SVM protocols, read/filled through the feature cache.

Preprocessing (no crop, the whole image squashed to a square): VISSL resizes the short side
to 256 then to 224x224; FSSB (Caffe2) resizes straight to the input size (227/224). Sizes
scale with the model's `input_size` (64 px for `alexnet_small`). Pooling: the `goyal2019`
table of `protocols/pooling.py` (AlexNet conv1-5, ResNet res2-res5 ~9k dims).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

from dcbench.core.errors import UserError
from dcbench.data.decode import open_image
from dcbench.data.loader import DecodeReport
from dcbench.data.voc import VOCClassification
from dcbench.engine.resumable import status as log
from dcbench.protocols.base import RunInfo, run_info
from dcbench.protocols.probe.feature_cache import FeatureCache
from dcbench.protocols.probe.frozen_features import cached_features
from dcbench.protocols.probe.pooling import model_pool_specs
from dcbench.protocols.svm.core import SVMSettings, resolve_settings

if TYPE_CHECKING:
    from dcbench.models.backbone import Backbone


def squash_transform(size: int, resize_short: int | None, mean: Sequence[float],
                     std: Sequence[float]) -> v2.Compose:
    """[Resize(short side)] + Resize((size, size)), no crop (VISSL / FSSB SVM extraction)."""
    steps: list[Any] = [v2.ToImage()]
    if resize_short:
        steps.append(v2.Resize(resize_short, antialias=True))
    steps += [v2.Resize((size, size), antialias=True), v2.ToDtype(torch.float32, scale=True),
              v2.Normalize(list(mean), list(std))]
    return v2.Compose(steps)


class IndexedVOC(Dataset):
    """A VOC split whose 'label' is the image position (labels are looked up afterwards).

    `paths` and `targets` feed the feature-cache fingerprint (a label change invalidates it).
    """

    def __init__(self, voc: VOCClassification, transform: Any) -> None:
        self.voc = voc
        self.transform = transform
        self.root = str(voc.folder)
        self.paths = [path for path, _ in voc.samples]
        self.targets = ["".join(f"{int(v):+d}" for v in row) for row in voc.labels]
        self.samples = [(path, i) for i, path in enumerate(self.paths)]  # for data.pipeline

    def __len__(self) -> int:
        return len(self.voc)

    def __getitem__(self, index: int) -> tuple[Any, int, int]:
        image = open_image(self.voc.image_path(self.voc.ids[index]))
        return (None if image is None else self.transform(image)), index, index


@dataclasses.dataclass
class SplitFeatures:
    """Pooled features per layer of the images of one split that decoded, with their labels."""

    features: dict[str, np.ndarray]  # layer -> (N, D) float32
    labels: np.ndarray  # (N, 20) int8 in {1, -1, 0 = difficult}
    ids: list[str]
    paths: list[str] = dataclasses.field(default_factory=list)  # the image files, as ids


def voc_split_features(model: Backbone, data_dir: str | Path, split: str,
                       layers: Sequence[str], *, pooling: str, resize_short: int | None,
                       use_cache: bool, batch_size: int, device: str,
                       progress: bool, pipeline: str = "cpu") -> SplitFeatures:
    """Pooled features of VOC2007 `split` for each layer (one forward pass for all taps),
    read through `pipeline` (the config's `input_pipeline`, `data.pipeline`)."""
    model.check_layers(list(layers))
    model.to(device).eval()
    size = int(model.config.get("input_size", 224))
    short = round(resize_short * size / 224) if resize_short else None
    mean, std = model.config["mean"], model.config["std"]
    voc = VOCClassification(data_dir, 2007, split)
    dataset = IndexedVOC(voc, squash_transform(size, short, mean, std))
    specs = model_pool_specs(model, list(layers), size, pooling)
    report = DecodeReport()
    desc = (f"squash(size={size},short={short},mean={','.join(f'{m:.4f}' for m in mean)},"
            f"std={','.join(f'{s:.4f}' for s in std)})")
    sets = cached_features(model, dataset, specs, desc, cache=FeatureCache() if use_cache else None,
                           batch_size=batch_size, device=device, progress=progress,
                           report=report, desc=f"voc07 {split} features", pipeline=pipeline)
    if report.count:
        log(report.summary())
    first = next(iter(sets.values()))
    positions = first.indices.numpy()
    if positions.size == 0:
        raise UserError(f"no VOC2007 {split} image of {data_dir} could be decoded")
    return SplitFeatures({layer: s.features.numpy() for layer, s in sets.items()},
                         voc.labels[positions].astype(np.int8),
                         [voc.ids[p] for p in positions], [dataset.paths[p] for p in positions])


def svm_run_inputs(model: Backbone, data_dir: str | Path, config: Any, protocol: str, *,
                   train_split: str, test_split: str, run_id: str, device: str,
                   progress: bool) -> tuple[SVMSettings, RunInfo, Any, Any]:
    """What both VOC SVM protocols start from: the SVM settings, the run's row columns, and
    the (cached) pooled features of the train and test splits."""
    settings = resolve_settings(config.cost_list, config.costs, folds=config.folds,
                                tol=config.tol, max_iter=config.max_iter,
                                positive_weight=config.positive_weight, seed=config.seed)
    info = run_info(model, protocol, config, run_id=run_id, device=device, dataset="voc2007")
    common = dict(pooling=config.pooling, resize_short=config.resize_short,
                  use_cache=config.fast, batch_size=config.batch_size, device=device,
                  progress=progress, pipeline=config.input_pipeline)
    train = voc_split_features(model, data_dir, train_split, config.layers, **common)
    test = voc_split_features(model, data_dir, test_split, config.layers, **common)
    return settings, info, train, test
