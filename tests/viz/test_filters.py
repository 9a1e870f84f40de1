"""First-layer filters: the Sobel composition is checked against scipy and against the network."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from scipy.signal import convolve2d

from dcbench.cli.entry import main
from dcbench.core.errors import UserError
from dcbench.viz.filters import compose_sobel, effective_filters, filter_grid, filters_image


def test_compose_sobel_matches_scipy_full_convolution(small_sobel):
    w = small_sobel.features[0].weight.detach().double().numpy()  # (32, 2, 5, 5)
    s = small_sobel.sobel[1].weight.detach().double().numpy()  # (2, 1, 3, 3)
    got = compose_sobel(small_sobel.features[0].weight, small_sobel.sobel).double().numpy()
    assert got.shape == (32, 3, 7, 7)
    for o in (0, 7, 31):
        grey = sum(convolve2d(w[o, j], s[j, 0], mode="full") for j in range(2))
        for c in range(3):  # the grayscale layer averages RGB with weight 1/3 each
            np.testing.assert_allclose(got[o, c], grey / 3.0, rtol=1e-5, atol=1e-6)


def test_effective_filter_reproduces_the_network_in_the_interior(small_sobel):
    conv = small_sobel.features[0]
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        net = conv(small_sobel.sobel(x)) - conv.bias.view(1, -1, 1, 1)
        eff = F.conv2d(x, effective_filters(small_sobel), stride=conv.stride,
                       padding=conv.padding[0] + 1)
    assert eff.shape == net.shape
    # borders differ only through the two zero paddings; the interior must agree exactly
    torch.testing.assert_close(eff[..., 2:-2, 2:-2], net[..., 2:-2, 2:-2], rtol=1e-4, atol=1e-5)


def test_rgb_model_shows_raw_conv1(small_rgb):
    got = effective_filters(small_rgb)
    torch.testing.assert_close(got, small_rgb.features[0].weight.detach())


def test_grid_layout_and_per_filter_normalisation():
    filters = torch.arange(5 * 3 * 4 * 4, dtype=torch.float32).reshape(5, 3, 4, 4)
    filters[1] *= -100.0  # very different scales must still fill 0..255 each
    grid = filter_grid(filters, ncols=3, scale=2, padding=1)
    # 2 rows x 3 columns of 4x4 tiles, 1-px padding around each, then x2
    assert grid.shape == ((2 * (4 + 1) + 1) * 2, (3 * (4 + 1) + 1) * 2, 3)
    assert grid.dtype == np.uint8
    for col in (0, 1):
        tile = grid[2:10, 2 + col * 10 : 10 + col * 10]
        assert tile.min() == 0 and tile.max() == 255
    assert (grid[12:20, 22:30] == 255).all()  # the 6th cell is blank (white)


def test_constant_filter_is_grey_not_black():
    grid = filter_grid(torch.ones(1, 3, 3, 3), scale=1, padding=0)
    assert (grid == 128).all()


def test_filters_image_is_deterministic(small_sobel):
    a, b = filters_image(small_sobel), filters_image(small_sobel)
    # 32 filters -> 6x6 grid of 7+1 px (+1) = 49 px, enlarged to >= 480 px: scale 10
    assert a.shape == ((6 * 8 + 1) * 10, (6 * 8 + 1) * 10, 3)
    assert filters_image(small_sobel, scale=4).shape == ((6 * 8 + 1) * 4, (6 * 8 + 1) * 4, 3)
    np.testing.assert_array_equal(a, b)
    # Sobel-composed filters are grey: every RGB channel equal
    np.testing.assert_array_equal(a[..., 0], a[..., 1])


def test_cli_writes_png_and_refuses_bad_out(tmp_path, capsys):
    out = tmp_path / "f.png"
    assert main(["viz", "filters", "--model", "random-alexnet_small-sobel", "--out", str(out)]) == 0
    first = out.read_bytes()
    width, height = Image.open(out).size  # the 196 px grid under a two-line title
    assert width >= 196 and height >= 196 + 2 * 18
    assert main(["viz", "filters", "--model", "random-alexnet_small-sobel", "--out", str(out)]) == 0
    assert out.read_bytes() == first
    bad = tmp_path / "f.jpg"
    assert main(["viz", "filters", "--model", "random-alexnet_small-sobel", "--out", str(bad)]) == 2
    assert "--out must end in .png" in capsys.readouterr().err
    assert not bad.exists()
    assert main(["viz", "filters", "--model", "nope-model", "--out", str(tmp_path / "n.png")]) == 2
    assert not (tmp_path / "n.png").exists()


def test_bad_scale_refused():
    with pytest.raises(UserError):
        filter_grid(torch.zeros(2, 3, 3, 3), scale=0)
