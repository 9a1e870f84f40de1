"""The images a training run shows in TensorBoard / W&B every few epochs: a grid of images
from a few clusters (one row per cluster, as the thesis looks at clusters) and the conv1
filters (`viz.filters`). Training cannot import viz (sibling layers): the CLI passes
`training_images(data_dir)` to `train` as its `TrackingOptions.images` callback.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dcbench.data.decode import open_image
from dcbench.data.folders import ImageFolderDataset
from dcbench.viz.filters import effective_filters, filter_grid
from dcbench.viz.grid import tile_rows


def pick_clusters(labels: np.ndarray, clusters: int, per_cluster: int, seed: int
                  ) -> list[tuple[int, np.ndarray]]:
    """(cluster id, dataset indices) of `clusters` non-empty clusters drawn with `seed`
    (sorted by id), each with up to `per_cluster` of its images drawn likewise."""
    labels = np.asarray(labels).reshape(-1)
    ids = np.unique(labels[labels >= 0])
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(ids, min(clusters, ids.size), replace=False)) if ids.size \
        else ids
    out = []
    for cluster in chosen.tolist():
        members = np.flatnonzero(labels == cluster)
        out.append((int(cluster), np.sort(rng.choice(members, min(per_cluster, members.size),
                                                     replace=False))))
    return out


def clusters_image(paths: list[str], labels: np.ndarray, *, clusters: int = 6,
                   per_cluster: int = 8, tile: int = 64, seed: int = 0) -> np.ndarray:
    """A grid (H, W, 3) uint8: one row per drawn cluster, its images as `tile`-px squares
    (an undecodable image is a blank cell)."""
    rows = []
    for _, indices in pick_clusters(labels, clusters, per_cluster, seed):
        row: list[torch.Tensor | None] = []
        for index in indices.tolist():
            image = open_image(paths[index])
            if image is None:
                row.append(None)
                continue
            arr = np.asarray(image.resize((tile, tile)), dtype=np.float32) / 255.0
            row.append(torch.from_numpy(arr).permute(2, 0, 1))
        rows.append(row)
    if not any(t is not None for row in rows for t in row):
        raise ValueError("no cluster image could be read")
    return tile_rows(rows)


def training_images(data_dir: str | os.PathLike, seed: int = 0
                    ) -> Callable[[Any, np.ndarray, int], dict[str, np.ndarray]]:
    """The callback `(model, labels, epoch) -> {tag: image}` for `dcbench train`'s trackers:
    `images/clusters` (images of a few clusters, drawn anew each epoch from `seed`) and
    `images/conv1_filters` (the effective first-layer filters)."""
    paths = [path for path, _ in ImageFolderDataset(Path(data_dir)).samples]

    def draw(model: Any, labels: np.ndarray, epoch: int) -> dict[str, np.ndarray]:
        with torch.no_grad():  # composed on the model's device, drawn on the host
            filters = filter_grid(effective_filters(model).cpu())
        return {"images/clusters": clusters_image(paths, labels, seed=seed * 100003 + epoch),
                "images/conv1_filters": filters}

    return draw
