"""Top-activating images per channel (thesis Figure 5.4, official visu/activ-retrieval.py).

The score of an image for a channel is the spatial mean of that channel's post-ReLU
activation map (the conv taps are post-ReLU), exactly the official ranking. Each output row is
one channel: its `top` highest-scoring images, best first (ties go to the earlier image).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from dcbench.core.errors import UserError
from dcbench.models.backbone import Backbone
from dcbench.viz.grid import (
    FONT_SIZE,
    auto_scale,
    short_name,
    tile_rows,
    upscale,
    with_row_labels,
    with_title,
)
from dcbench.viz.tap_stats import (
    display_tiles,
    image_dataset,
    pick_indices,
    spatial_mean,
    tap_stats,
)


def top_images(scores: torch.Tensor, channels: Sequence[int], top: int) -> np.ndarray:
    """Rows of `scores` (N, C) with the `top` highest values per channel -> (len(channels), top).

    Sorting is stable on the negated scores, so equal scores keep dataset order.
    """
    if not 1 <= top <= scores.shape[0]:
        raise UserError(f"--top must be between 1 and the number of images ({scores.shape[0]})")
    cols = scores[:, list(channels)].double().numpy()
    return np.argsort(-cols, axis=0, kind="stable")[:top].T.copy()


def check_channels(channels: Sequence[int], count: int, layer: str) -> list[int]:
    """Refuse channel numbers outside 0..count-1 (the tap's width)."""
    bad = [c for c in channels if not 0 <= c < count]
    if bad:
        raise UserError(f"channel {bad[0]} out of range: {layer} has channels 0..{count - 1}")
    if not channels:
        raise UserError("no channels chosen")
    return list(channels)


@dataclass
class TopActivations:
    """For each channel, its top images (dataset indices, best first) and their scores."""

    layer: str
    channels: list[int]
    indices: np.ndarray  # (len(channels), top)
    scores: np.ndarray  # (len(channels), top)
    skipped: int
    pipeline: str = "cpu"  # the input pipeline that read the images (`TapStats.pipeline`)


def find_top_activations(
    model: Backbone,
    folder: str | os.PathLike,
    layer: str,
    channels: Sequence[int] | None = None,
    top: int = 9,
    max_images: int | None = None,
    batch_size: int = 64,
    device: str = "cpu",
    pipeline: str = "auto",
) -> TopActivations:
    """Score every image of `folder` per channel of `layer` and keep the `top` per channel.

    `channels` defaults to the first 8 of the layer (all of them if fewer); `pipeline` is
    the input pipeline reading the images (`tap_stats`).
    """
    model.check_layers([layer])
    count = model.tap_channels(layer)
    chosen = check_channels(list(range(min(8, count))) if channels is None else channels,
                            count, layer)
    dataset = image_dataset(model, folder)
    stats = tap_stats(model, dataset, layer, spatial_mean,
                      pick_indices(len(dataset), max_images), batch_size, device, pipeline)
    rows = top_images(stats.values, chosen, top)
    scores = np.take_along_axis(stats.values[:, chosen].numpy().T, rows, axis=1)
    return TopActivations(layer, chosen, stats.indices[rows], scores, stats.skipped,
                          stats.pipeline)


def activations_image(
    result: TopActivations, model: Backbone, folder: str | os.PathLike, scale: int | None = None
) -> np.ndarray:
    """One row per channel of its top images, best on the left -> uint8 image with a header;
    `scale` None enlarges small images to tiles of at least `grid.MIN_TILE` px."""
    dataset = image_dataset(model, folder)
    rows = [display_tiles(model, dataset, row) for row in result.indices]
    tile = next(t for row in rows for t in row if t is not None)
    scale = scale or auto_scale(int(tile.shape[-1]))
    image = upscale(tile_rows(rows, padding=2), scale)
    cell = (image.shape[0] - 2 * scale) // len(rows)  # tile + padding, in output pixels
    labels = [(2 * scale + r * cell + cell // 2 - FONT_SIZE // 2, f"ch {c}")
              for r, c in enumerate(result.channels)]
    image = with_row_labels(image, labels)
    return with_title(image, [f"{short_name(model.name)}, {result.layer}: top "
                              f"{result.indices.shape[1]} images per channel, best first"])
