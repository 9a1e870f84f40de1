"""Tiling, normalisation and PNG encoding helpers."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from dcbench.viz.grid import (
    border,
    denormalize,
    minmax_per_item,
    png_bytes,
    save_png,
    tile_rows,
    to_uint8,
    upscale,
)


def test_minmax_per_item_by_hand():
    x = torch.tensor([[[-2.0, 0.0, 2.0]], [[5.0, 5.0, 5.0]]])
    out = minmax_per_item(x)
    torch.testing.assert_close(out[0], torch.tensor([[0.0, 0.5, 1.0]]))
    torch.testing.assert_close(out[1], torch.full((1, 3), 0.5))


def test_denormalize_inverts_normalize():
    mean, std = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]
    img = torch.rand(3, 5, 5, generator=torch.Generator().manual_seed(0))
    normed = (img - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    torch.testing.assert_close(denormalize(normed, mean, std), img)


def test_tile_rows_layout_blanks_and_shapes():
    red = torch.zeros(3, 4, 4)
    red[0] = 1.0
    grid = tile_rows([[red, None, red], [red]], padding=1)
    assert grid.shape == (2 * 5 + 1, 3 * 5 + 1, 3) and grid.dtype == np.uint8
    assert (grid[1:5, 1:5] == [255, 0, 0]).all()
    assert (grid[1:5, 6:10] == 255).all()  # None -> blank white cell
    assert (grid[6:10, 6:16] == 255).all()  # short row padded with blanks
    with pytest.raises(ValueError, match="differ in shape"):
        tile_rows([[red, torch.zeros(3, 5, 5)]])


def test_border_upscale_and_uint8():
    tile = border(torch.zeros(3, 8, 8), (0.0, 1.0, 0.0), width=2)
    assert tile[1, 0, 0] == 1.0 and tile[1, 4, 4] == 0.0
    img = to_uint8(torch.full((3, 2, 2), 0.5))
    assert (img == 128).all() and img.shape == (2, 2, 3)
    assert upscale(img, 3).shape == (6, 6, 3)


def test_png_roundtrip_and_atomic_save(tmp_path):
    img = (np.arange(4 * 5 * 3) % 256).astype(np.uint8).reshape(4, 5, 3)
    data = png_bytes(img)
    assert data == png_bytes(img.copy())
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data))), img)
    save_png(img, tmp_path / "sub" / "x.png")
    assert (tmp_path / "sub" / "x.png").read_bytes() == data
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["x.png"]  # no temp file left
    with pytest.raises(ValueError):
        png_bytes(img.astype(np.float32))
