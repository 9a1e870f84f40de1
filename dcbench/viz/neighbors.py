"""Nearest-neighbour queries in a layer's feature space (thesis Figure 5.3).

Each image is described by a tap average-pooled to grid x grid and L2-normalised, so the
thesis's l2 distance and the cosine similarity used here rank neighbours identically. A row
of the figure is a query, its k neighbours under model A and, with a second model (typically
the same architecture at random init), its k neighbours under B. When the folder has classes,
every neighbour gets a green (same class as the query) or red frame, and the share of
same-class neighbours is reported per model: the number behind "training improves the NN".
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import torch

from dcbench.core.errors import UserError
from dcbench.models.backbone import Backbone
from dcbench.viz.grid import Tile, auto_scale, border, short_name, tile_rows, upscale, with_header
from dcbench.viz.tap_stats import display_tiles, image_dataset, pick_indices, pooled_l2, tap_stats

SAME = (0.10, 0.70, 0.20)
OTHER = (0.85, 0.15, 0.15)


def knn_cosine(
    queries: torch.Tensor, base: torch.Tensor, k: int, exclude: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k cosine neighbours of L2-normalised `queries` (Q, D) among `base` (N, D).

    `exclude[q]` is a base row that query q may not return (itself), or -1. Returns (row
    indices (Q, k), similarities (Q, k)), best first; ties go to the lower row.
    """
    if k < 1 or k > base.shape[0] - (0 if exclude is None else 1):
        raise UserError(f"--k must be between 1 and the number of other images ({base.shape[0]})")
    sims = queries.double() @ base.double().T
    if exclude is not None:
        rows = torch.nonzero(exclude >= 0).flatten()
        sims[rows, exclude[rows]] = -torch.inf
    order = torch.from_numpy(np.argsort(-sims.numpy(), axis=1, kind="stable")[:, :k].copy())
    return order, torch.gather(sims, 1, order).float()


@dataclass
class NeighborPanel:
    """Neighbours of the same queries under one model, in dataset indices."""

    name: str
    neighbors: np.ndarray  # (Q, k) dataset indices
    similarities: np.ndarray  # (Q, k)
    same_class: float | None  # share of neighbours with the query's label (labelled data only)


@dataclass
class NeighborResult:
    """The queries, each model's panel, how many images were skipped, and the input
    pipeline that read them (`TapStats.pipeline`; every model's pass reads the same way)."""

    queries: np.ndarray
    panels: list[NeighborPanel] = field(default_factory=list)
    skipped: int = 0
    pipeline: str = "cpu"


def find_neighbors(
    models: list[Backbone],
    folder: str | os.PathLike,
    layer: str = "conv5",
    k: int = 3,
    n_queries: int = 6,
    query_indices: list[int] | None = None,
    grid: int = 1,
    max_images: int | None = None,
    batch_size: int = 64,
    device: str = "cpu",
    pipeline: str = "auto",
) -> NeighborResult:
    """For each model, the k nearest images (cosine on pooled tap) of the same queries.

    The search set is every image of `folder` (or `max_images` evenly spaced ones); queries are
    `query_indices` (dataset indices) or `n_queries` evenly spaced images of the search set.
    `pipeline`: the input pipeline reading the images (`tap_stats`).
    """
    if not models:
        raise UserError("need at least one model")
    datasets = [image_dataset(m, folder) for m in models]
    base = pick_indices(len(datasets[0]), max_images)
    if query_indices is not None:
        bad = [q for q in query_indices if not 0 <= q < len(datasets[0])]
        if bad:
            raise UserError(f"query index {bad[0]} out of range (0..{len(datasets[0]) - 1})")
        queries = np.asarray(query_indices, dtype=np.int64)
        base = np.union1d(base, queries)
    else:
        if n_queries < 1:
            raise UserError(f"--queries must be >= 1, got {n_queries}")
        queries = base[pick_indices(len(base), n_queries)]
    targets = datasets[0].targets
    result = NeighborResult(queries=queries)
    for model, dataset in zip(models, datasets, strict=True):
        stats = tap_stats(model, dataset, layer, pooled_l2(grid), base, batch_size, device,
                           pipeline)
        result.skipped = max(result.skipped, stats.skipped)
        result.pipeline = stats.pipeline
        row_of = {int(i): r for r, i in enumerate(stats.indices)}
        missing = [int(q) for q in queries if int(q) not in row_of]
        if missing:
            raise UserError(f"query image {dataset.samples[missing[0]][0]} could not be decoded")
        rows = torch.as_tensor([row_of[int(q)] for q in queries])
        order, sims = knn_cosine(stats.values[rows], stats.values, k, exclude=rows)
        found = stats.indices[order.numpy()]
        same = None
        if (targets[queries] >= 0).all():
            same = float((targets[found] == targets[queries][:, None]).mean())
        result.panels.append(NeighborPanel(model.name, found, sims.numpy(), same))
    return result


def neighbors_image(
    result: NeighborResult, model: Backbone, folder: str | os.PathLike, scale: int | None = None
) -> np.ndarray:
    """Rows of query | k neighbours per model (blank column between models) -> uint8 image;
    `scale` None enlarges small images to tiles of at least `grid.MIN_TILE` px."""
    dataset = image_dataset(model, folder)
    targets = dataset.targets
    labelled = bool((targets[result.queries] >= 0).all())
    rows: list[list[Tile]] = []
    for q, query in enumerate(result.queries):
        row: list[Tile] = display_tiles(model, dataset, np.array([query]))
        for panel in result.panels:
            row.append(None)
            for tile, index in zip(
                display_tiles(model, dataset, panel.neighbors[q]), panel.neighbors[q], strict=True
            ):
                if tile is not None and labelled:
                    same = targets[index] == targets[query]
                    tile = border(tile, SAME if same else OTHER)
                row.append(tile)
        rows.append(row)
    tile = next(t for row in rows for t in row if t is not None)
    scale = scale or auto_scale(int(tile.shape[-1]))
    image = upscale(tile_rows(rows, padding=2), scale)

    return with_header(image, neighbors_header(result, int(tile.shape[-1]), scale))


def neighbors_header(result: NeighborResult, tile: int, scale: int) -> list[tuple[int, str]]:
    """(x, text) column titles: `query`, then each model's short name and same-class share
    over its first neighbour column (tiles of `tile` px laid out by make_grid, padding 2)."""
    k = result.panels[0].neighbors.shape[1]

    def column_x(col: int) -> int:
        return scale * (2 + col * (tile + 2))

    texts = [(column_x(0), "query")]
    for p, panel in enumerate(result.panels):
        score = "" if panel.same_class is None else f"\n{panel.same_class:.0%} same class"
        texts.append((column_x(2 + p * (k + 1)), f"{short_name(panel.name)}{score}"))
    return texts
