"""What the classification protocols read: labelled splits, model-sized transforms, and pooled
frozen features (extracted once, optionally through the on-disk `FeatureCache`)."""

from __future__ import annotations

import copy
import dataclasses
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm import tqdm

from dcbench.core.errors import UserError
from dcbench.data import transforms as T
from dcbench.data.folders import find_dataset
from dcbench.data.loader import DecodeReport, make_loader
from dcbench.protocols.base import dataset_name
from dcbench.protocols.cache import CacheKey, FeatureCache, FeatureSet, dataset_fingerprint
from dcbench.protocols.pooling import PoolSpec, model_pool_specs, pool_features

if TYPE_CHECKING:
    from dcbench.models.backbone import Backbone


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Crop and resize sizes for a model: the published 224/256, scaled to its input size."""

    crop: int
    resize: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def for_model(cls, model: Backbone) -> Sizes:
        """crop = the model's native input size, resize = round(crop * 256 / 224)."""
        crop = int(model.config.get("input_size", 224))
        return cls(crop, round(crop * 256 / 224), tuple(model.config["mean"]),
                   tuple(model.config["std"]))

    def describe(self, pipeline: str) -> str:
        """A stable text form of a pipeline at these sizes (feature-cache key part)."""
        mean = ",".join(f"{v:.4f}" for v in self.mean)
        std = ",".join(f"{v:.4f}" for v in self.std)
        return f"{pipeline}(crop={self.crop},resize={self.resize},mean={mean},std={std})"


@dataclasses.dataclass
class Splits:
    """The labelled train and evaluation datasets of a classification benchmark."""

    train: Any
    val: Any
    num_classes: int
    name: str


def load_splits(data_dir: str | Path, eval_split: str = "val") -> Splits:
    """`DIR/train` + `DIR/val` (ImageFolders) or Places205-style list files, labels checked."""
    train = find_dataset(data_dir, "train")
    val = find_dataset(data_dir, eval_split)
    train_classes = list(getattr(train, "classes", []))
    val_classes = list(getattr(val, "classes", []))
    folders = hasattr(train, "class_to_idx") and hasattr(val, "class_to_idx")
    if folders and train_classes != val_classes:
        missing = sorted(set(val_classes) ^ set(train_classes))[:5]
        raise UserError(
            f"train and {eval_split} splits of {data_dir} have different classes "
            f"(e.g. {', '.join(missing)}); both must hold the same class folders"
        )
    if (train.targets < 0).any():
        raise UserError(f"{data_dir}/train has unlabelled images; this protocol needs labels")
    num_classes = int(max(train.targets.max(), val.targets.max())) + 1
    if num_classes < 2:
        raise UserError(f"{data_dir} has a single class; classification needs at least two")
    return Splits(train, val, num_classes, dataset_name(data_dir))


def with_transform(dataset: Any, transform: Callable | None) -> Any:
    """A shallow copy of a dcbench dataset with another transform (samples shared)."""

    clone = copy.copy(dataset)
    clone.transform = transform
    return clone


def stratified_split(labels: np.ndarray, fraction: float, seed: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified (train, held-out) positions; every class keeps >= 1 training sample.

    Held-out gets round(fraction * n_c) samples of each class c (at least 1 when n_c >= 2).
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train, held = [], []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        n_held = 0 if members.size < 2 else min(members.size - 1,
                                                max(1, round(fraction * members.size)))
        held.append(members[:n_held])
        train.append(members[n_held:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(held))


def log(message: str) -> None:
    """Progress and status lines go to stderr (stdout is kept for the result table)."""
    print(message, file=sys.stderr, flush=True)


@torch.no_grad()
def extract_pooled(
    featurize: Callable[[torch.Tensor], dict[str, torch.Tensor]],
    dataset: Any,
    specs: dict[str, PoolSpec],
    *,
    batch_size: int,
    device: str,
    progress: bool,
    report: DecodeReport | None = None,
    desc: str = "features",
    workers: int = 0,
) -> dict[str, FeatureSet]:
    """One pass over `dataset`: featurize each batch, pool each tap, keep them on the CPU."""
    loader = make_loader(dataset, batch_size, workers=workers)
    chunks: dict[str, list[torch.Tensor]] = {layer: [] for layer in specs}
    labels, indices = [], []
    for batch in tqdm(loader, desc=desc, disable=not progress, file=sys.stderr, leave=False):
        if report is not None:
            report.add(batch.bad, dataset)
        if len(batch) == 0:
            continue
        out = featurize(batch.images.to(device))
        for layer, spec in specs.items():
            chunks[layer].append(pool_features(out[layer], spec).float().cpu())
        labels.append(batch.labels)
        indices.append(batch.indices)
    if not labels:
        raise UserError(f"no image of {getattr(dataset, 'root', 'the dataset')} could be decoded")
    lab, idx = torch.cat(labels).long(), torch.cat(indices).long()
    return {layer: FeatureSet(torch.cat(parts), lab, idx) for layer, parts in chunks.items()}


def tap_featurizer(model: Backbone, layers: Sequence[str]
                   ) -> Callable[[torch.Tensor], dict[str, torch.Tensor]]:
    """images -> {tap: activation} with the frozen backbone in eval mode (BN statistics)."""
    layers = list(layers)

    def featurize(images: torch.Tensor) -> dict[str, torch.Tensor]:
        model.eval()
        return model.forward_features(images, layers)

    return featurize


def cached_features(
    model: Backbone,
    dataset: Any,
    specs: dict[str, PoolSpec],
    transform_desc: str,
    *,
    cache: FeatureCache | None,
    batch_size: int,
    device: str,
    progress: bool,
    report: DecodeReport | None = None,
    featurize: Callable[[torch.Tensor], dict[str, torch.Tensor]] | None = None,
    desc: str = "features",
) -> dict[str, FeatureSet]:
    """Pooled features per tap, read from `cache` when present; missing taps extracted in one pass.

    `dataset.transform` must be the pipeline that `transform_desc` names (no randomness).
    Pass `featurize` for inputs that are not plain taps (its keys must match `specs`).
    """
    keys = {}
    found: dict[str, FeatureSet] = {}
    if cache is not None:
        fingerprint = dataset_fingerprint(dataset.paths, list(dataset.targets))
        sha = model.weights_sha256()
        for layer, spec in specs.items():
            keys[layer] = CacheKey(sha, layer, spec.describe(), fingerprint, transform_desc)
            hit = cache.load(keys[layer])
            if hit is not None:
                found[layer] = hit
                if report is not None:  # a hit still reports the files the entry lacks
                    kept = set(hit.indices.tolist())
                    report.add([i for i in range(len(dataset)) if i not in kept], dataset)
    missing = {layer: spec for layer, spec in specs.items() if layer not in found}
    if missing:
        fn = featurize or tap_featurizer(model, list(missing))
        extracted = extract_pooled(fn, dataset, missing, batch_size=batch_size, device=device,
                                   progress=progress, report=report, desc=desc)
        for layer, feats in extracted.items():
            if cache is not None:
                cache.save(keys[layer], feats)
            found[layer] = feats
    return {layer: found[layer] for layer in specs}


def frozen_features(
    model: Backbone,
    dataset: Any,
    layers: Sequence[str],
    *,
    use_cache: bool,
    batch_size: int,
    device: str,
    progress: bool,
    pooling: str = "dc2018",
    desc: str = "features",
) -> dict[str, FeatureSet]:
    """Center-crop features of `layers` (pooled per `pooling` table) for a whole dataset.

    With `use_cache` the shared feature cache is read and filled (the entries linear-conv
    `--fast` uses for the same taps); otherwise features are extracted fresh.
    """

    model.check_layers(list(layers))
    model.to(device).eval()
    sizes = Sizes.for_model(model)
    center = T.center_crop(sizes.crop, sizes.resize, mean=sizes.mean, std=sizes.std)
    specs = model_pool_specs(model, list(layers), sizes.crop, pooling)
    report = DecodeReport()
    out = cached_features(model, with_transform(dataset, center), specs,
                          sizes.describe("center_crop"),
                          cache=FeatureCache() if use_cache else None, batch_size=batch_size,
                          device=device, progress=progress, report=report, desc=desc)
    if report.count:
        log(report.summary())
    return out
