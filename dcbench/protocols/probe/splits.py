"""What the classification protocols read: labelled splits, model-sized transforms, and the
seeded stratified held-out split."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dcbench.data.labelled_splits import open_labelled_splits
from dcbench.protocols.base import dataset_name

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
    train, val, num_classes = open_labelled_splits(data_dir, eval_split)
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
