"""R-MAC regions vs a plain-loop port of Tolias et al.'s layout; region descriptors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dcbench.protocols import get_protocol
from dcbench.protocols.rmac.regions import aggregate, region_descriptors, rmac_regions


def reference_regions(H: int, W: int, L: int) -> list[tuple[int, int, int, int]]:
    """Plain loops after the MATLAB `rmac_regions` (overlap 0.4, steps 2..7, border shift)."""
    ovr = 0.4
    w = min(H, W)
    best, idx = None, 0
    for i, steps in enumerate(range(2, 8)):
        b = (max(H, W) - w) / (steps - 1)
        err = abs((w * w - w * b) / (w * w) - ovr)
        if best is None or err < best:
            best, idx = err, i + 1
    Wd = idx if H < W else 0
    Hd = idx if H > W else 0
    out = []
    for level in range(1, L + 1):
        wl = math.floor(2 * w / (level + 1))
        wl2 = math.floor(wl / 2 - 1)
        if wl == 0:
            continue
        bw = (W - wl) / (level + Wd - 1) if level + Wd - 1 > 0 else 0
        bh = (H - wl) / (level + Hd - 1) if level + Hd - 1 > 0 else 0
        for i in range(level + Hd):
            for j in range(level + Wd):
                x = math.floor(wl2 + bw * j) - wl2
                y = math.floor(wl2 + bh * i) - wl2
                if x + wl > W:
                    x -= x + wl - W
                if y + wl > H:
                    y -= y + wl - H
                out.append((x, y, wl, wl))
    return out


@pytest.mark.parametrize("shape", [(64, 48), (48, 64), (32, 32), (30, 40), (7, 20), (3, 5),
                                   (1, 9)])
def test_regions_match_plain_loop(shape):
    height, width = shape
    assert rmac_regions(height, width, 3) == reference_regions(height, width, 3)
    for x, y, w, h in rmac_regions(height, width, 3):
        assert x >= 0 and x + w <= width and y >= 0 and y + h <= height


def test_square_map_has_1_4_9_regions():
    assert len(rmac_regions(30, 30, 3)) == 1 + 4 + 9


def test_region_descriptors_are_normalised_maxima():
    fmap = torch.rand(5, 12, 16)
    desc = region_descriptors(fmap, 2)
    regions = rmac_regions(12, 16, 2)
    x, y, w, h = regions[-1]
    manual = fmap[:, y:y + h, x:x + w].reshape(5, -1).max(dim=1).values
    assert torch.allclose(desc[-1], manual / manual.norm())
    assert torch.allclose(desc.norm(dim=1), torch.ones(len(regions)))


def test_aggregate_is_unit_norm_sum():
    regions = torch.nn.functional.normalize(torch.rand(7, 6), dim=1)
    mean, proj = torch.zeros(6), torch.eye(6)[:4]
    out = aggregate(regions, mean, proj)
    manual = torch.nn.functional.normalize(regions[:, :4], dim=1).sum(0)
    assert torch.allclose(out, manual / manual.norm())


def official_region_count(H: int, W: int, L: int, legacy_float32: bool) -> int:
    """Port of the region count of `get_rmac_region_coordinates` (eval_retrieval.py).

    `legacy_float32=False` runs its operations as written under today's NumPy (NEP 50: the
    int64 scalars promote the float32 `steps` to float64). `True` is the 2018 NumPy 1.x
    value-based casting, written out: every scalar joins the float32 array as float32.
    """
    ovr = 0.4
    steps = np.array((2, 3, 4, 5, 6, 7), dtype=np.float32)
    w = np.minimum(H, W)
    if legacy_float32:
        b = np.float32(np.maximum(H, W) - w) / (steps - np.float32(1))
        w2 = np.float32(w ** 2)
        err = np.abs(((w2 - np.float32(w) * b) / w2) - np.float32(ovr))
        assert err.dtype == np.float32
    else:
        b = (np.maximum(H, W) - w) / (steps - 1)
        err = np.abs(((w ** 2 - w * b) / w ** 2) - ovr)
        assert err.dtype == np.float64
    idx = np.argmin(err) + 1
    Wd = idx if H < W else 0
    Hd = idx if H > W else 0
    count = 0
    for level in range(1, L + 1):
        if np.floor(2 * w / (level + 1)) == 0:
            continue
        count += (level - 1 + Wd + 1) * (level - 1 + Hd + 1)
    return count


@pytest.mark.parametrize(("shape", "counts"), [((30, 54), (26, 20)), ((35, 63), (26, 20)),
                                               ((54, 30), (26, 20))])
def test_float32_grid_reproduces_the_2018_region_count(shape, counts):
    height, width = shape
    assert official_region_count(height, width, 3, legacy_float32=False) == counts[0]
    assert official_region_count(height, width, 3, legacy_float32=True) == counts[1]
    assert len(rmac_regions(height, width, 3)) == counts[0]
    assert len(rmac_regions(height, width, 3, grid="float32")) == counts[1]


def test_both_grids_match_the_official_count_on_every_shape():
    differ = 0
    for height in range(1, 81):
        for width in range(1, 81):
            for grid, legacy in (("float64", False), ("float32", True)):
                assert len(rmac_regions(height, width, 3, grid)) == official_region_count(
                    height, width, 3, legacy), (height, width, grid)
            differ += len(rmac_regions(height, width, 3)) != len(
                rmac_regions(height, width, 3, "float32"))
    assert 0 < differ < 0.01 * 80 * 80  # a tie-breaking difference on a few shapes


def test_retrieval_faithful_dialect_uses_the_float32_grid():
    protocol = get_protocol("retrieval")
    assert protocol.resolve_config().region_grid == "float64"
    assert protocol.resolve_config(dialect="faithful-2018").region_grid == "float32"
