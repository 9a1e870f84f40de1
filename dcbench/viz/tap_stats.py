"""Per-image tap statistics for the retrieval figures (neighbours, top activations).

Images go through the model's own evaluation preprocessing (Resize to size*256/224, then
CenterCrop to the native input size, the model's mean/std) so a figure shows what the network
saw. Undecodable files are skipped and counted, never a crash. The images are read through
`data.pipeline.image_loader` (`pipeline`: `auto` = DALI on CUDA when installed, else PIL;
the same images and crops either way, pixels within JPEG-decoder tolerance).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from dcbench.core.errors import UserError
from dcbench.data.folders import DecodeReport, ImageFolderDataset
from dcbench.data.pipeline import describe_loader, image_loader, resolve_input_pipeline
from dcbench.data.transforms import center_crop
from dcbench.engine.inference import inference_batches
from dcbench.models.backbone import Backbone
from dcbench.viz.grid import denormalize

Reduce = Callable[[torch.Tensor], torch.Tensor]


def eval_transform(model: Backbone):
    """The model's center-crop pipeline at its native size (resize = size * 256 / 224)."""
    size = int(model.config["input_size"])
    return center_crop(size, round(size * 256 / 224), model.config["mean"], model.config["std"])


def image_dataset(model: Backbone, folder: str | os.PathLike) -> ImageFolderDataset:
    """`folder` (class sub-folders or a flat folder of images) preprocessed for `model`."""
    return ImageFolderDataset(folder, eval_transform(model))


def pick_indices(n: int, limit: int | None) -> np.ndarray:
    """All of range(n), or `limit` evenly spaced indices of it (deterministic, class-balanced
    on sorted folder trees)."""
    if limit is not None and limit < 1:
        raise UserError(f"--max-images must be >= 1, got {limit}")
    if limit is None or limit >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))


@dataclass
class TapStats:
    """`values[i]` is the statistic of dataset image `indices[i]` (decodable images only);
    `pipeline` the backend that read them (`dali` or `cpu`: `data.pipeline.describe_loader`,
    so an `auto` or a `dali` request that fell back to PIL says `cpu`)."""

    values: torch.Tensor
    indices: np.ndarray
    skipped: int
    pipeline: str


def tap_stats(
    model: Backbone,
    dataset: ImageFolderDataset,
    layer: str,
    reduce: Reduce,
    indices: np.ndarray | None = None,
    batch_size: int = 64,
    device: str = "cpu",
    pipeline: str = "auto",
) -> TapStats:
    """Run `model` over `dataset[indices]` in eval mode and keep `reduce(tap)` per image,
    reading the images through the input `pipeline` (`auto | cpu | dali`)."""
    model.check_layers([layer])
    pipeline = resolve_input_pipeline(pipeline, device, gpu_path=False)
    chosen = np.arange(len(dataset)) if indices is None else np.asarray(indices, dtype=np.int64)
    subset = torch.utils.data.Subset(dataset, chosen.tolist())
    loader = image_loader(subset, batch_size, pipeline=pipeline, device=device)
    model.eval().to(device)
    report = DecodeReport()
    values: list[torch.Tensor] = []
    kept: list[np.ndarray] = []
    # a Subset passes the dataset's own indices through, so bad files resolve against it
    for batch, tap in inference_batches(loader, lambda x: model.forward_features(x, [layer])[layer],
                                        device=device, dataset=dataset, report=report):
        values.append(reduce(tap).float().cpu())
        kept.append(batch.indices.numpy())
    if not values:
        raise UserError(f"no decodable images among the {len(chosen)} requested")
    return TapStats(torch.cat(values), np.concatenate(kept), report.count,
                    describe_loader(loader))


def spatial_mean(tap: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C) mean over space (fc taps (N, D) pass through)."""
    return tap.mean(dim=(2, 3)) if tap.dim() == 4 else tap


def pooled_l2(grid: int = 1) -> Reduce:
    """Average-pool conv maps to grid x grid, flatten, L2-normalise (cosine = dot product)."""
    if grid < 1:
        raise UserError(f"--grid must be >= 1, got {grid}")

    def reduce(tap: torch.Tensor) -> torch.Tensor:
        if tap.dim() == 4:
            tap = F.adaptive_avg_pool2d(tap, grid).flatten(1)
        return F.normalize(tap.float(), dim=1)

    return reduce


def display_tiles(model: Backbone, dataset: ImageFolderDataset, indices: np.ndarray) -> list:
    """The preprocessed images at `indices` as (3, H, W) tiles in [0, 1] (None if undecodable)."""
    tiles = []
    for index in np.asarray(indices).tolist():
        image = dataset[int(index)][0]
        tiles.append(
            None if image is None else denormalize(image, model.config["mean"], model.config["std"])
        )
    return tiles
