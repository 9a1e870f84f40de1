"""R-MAC regions and descriptors (Tolias, Sicre & Jegou 2016; DeepCluster `eval_retrieval.py`).

Regions: at level l = 1..L, square regions of side floor(2 min(H, W) / (l + 1)), laid out
with about 40% overlap; the long side gets `extra` more regions per level, `extra` chosen
among 1..6 so the overlap of the level-1 regions is closest to 40%. Coordinates are in the
feature map, clipped to it. `grid` is the arithmetic of that choice: the official code
divides by a float32 `steps` array, which NumPy >= 2 (NEP 50) computes in float64
(`float64`, the default) but the 2018 NumPy 1.x computed in float32 (`float32`, the
`faithful-2018` dialect). They differ where two counts tie in exact arithmetic (e.g. a
30 x 54 map: 26 regions in float64, 20 in float32). Descriptor: region max-pool -> L2 ->
PCA-whitening -> L2 -> sum over regions -> L2.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch

OVERLAP = 0.4
RegionGrid = Literal["float64", "float32"]


def extra_regions(height: int, width: int, grid: RegionGrid = "float64") -> int:
    """How many more regions the long side gets (1..6): the count whose level-1 overlap is
    closest to 40%, computed in `grid` arithmetic (first count on ties, as `np.argmin`)."""
    dtype = np.float32 if grid == "float32" else np.float64
    side = dtype(min(height, width))
    candidates = np.arange(2, 8).astype(dtype)  # regions along the long side, 2..7
    step = dtype(max(height, width) - min(height, width)) / (candidates - dtype(1))
    overlap = (side * side - side * step) / (side * side) - dtype(OVERLAP)
    return int(np.argmin(np.abs(overlap))) + 1


def rmac_regions(height: int, width: int, levels: int = 3,
                 grid: RegionGrid = "float64") -> list[tuple[int, int, int, int]]:
    """(x, y, w, h) of every R-MAC region of an H x W map; zero-size regions are left out."""
    side = min(height, width)
    extra = extra_regions(height, width, grid)
    extra_w = extra if height < width else 0
    extra_h = extra if height > width else 0
    regions = []
    for level in range(1, levels + 1):
        size = math.floor(2 * side / (level + 1))
        half = math.floor(size / 2 - 1)
        if size == 0:
            continue
        xs = _starts(width, size, half, level + extra_w)
        ys = _starts(height, size, half, level + extra_h)
        for y in ys:
            for x in xs:
                regions.append((min(x, width - size), min(y, height - size), size, size))
    return regions


def _starts(length: int, size: int, half: int, count: int) -> list[int]:
    """`count` region origins along one axis: evenly spaced centres, floored, shifted back."""
    gap = (length - size) / (count - 1) if count > 1 else 0.0
    return [int(round(math.floor(half + gap * i) - half)) for i in range(count)]


def l2n(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """L2 normalisation along `dim` (a zero vector stays zero)."""
    return x / x.norm(dim=dim, keepdim=True).clamp_min(1e-12)


def region_descriptors(fmap: torch.Tensor, levels: int = 3,
                       grid: RegionGrid = "float64") -> torch.Tensor:
    """(C, H, W) map -> (R, C) L2-normalised max-pooled region descriptors."""
    _, height, width = fmap.shape
    pooled = [fmap[:, y:y + h, x:x + w].amax(dim=(1, 2))
              for x, y, w, h in rmac_regions(height, width, levels, grid)]
    return l2n(torch.stack(pooled))


def aggregate(regions: torch.Tensor, mean: torch.Tensor, projection: torch.Tensor
              ) -> torch.Tensor:
    """(R, C) region descriptors -> one (D,) R-MAC vector: whiten, L2, sum, L2."""
    whitened = l2n((regions - mean) @ projection.T)
    return l2n(whitened.sum(dim=0))
