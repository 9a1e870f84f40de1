"""Caffe's `TransformationLayer` (SimuJenni/caffe `transformation_layer.cpp`, philkr's
`future` branch) against a port of its arithmetic written here: `generate` (the draws and
the affine composition T1 * RS * T0, float32) and `Forward_cpu` (per-pixel loops)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats

from dcbench.data import transforms as T
from dcbench.data.caffe_transform import CaffeDraw, CaffeTransformation

F = np.float32


def _mul(a: tuple, b: tuple) -> tuple:
    """Affine2D::operator* on (a00, a01, a10, a11, t0, t1), in float32."""
    a00, a01, a10, a11, t0, t1 = a
    b00, b01, b10, b11, u0, u1 = b
    return (a00 * b00 + a01 * b10, a00 * b01 + a01 * b11,
            a10 * b00 + a11 * b10, a10 * b01 + a11 * b11,
            a00 * u0 + a01 * u1 + t0, a10 * u0 + a11 * u1 + t1)


def _isint(v) -> bool:
    return abs(v - F(int(float(v) + 0.5))) < 1e-3


def port_affine(scale: float, sx: float, sy: float, mirror: bool, h: int, w: int,
                wo: int, ho: int) -> tuple:
    """`generate`'s composition for given draws (rotation 0: cos 1, sin 0)."""
    scale, sx, sy = F(scale), F(sx), F(sy)
    t0m = (F(1), F(0), F(0), F(1), F(-0.5 * wo), F(-0.5 * ho))
    rs = [scale * F(1), -scale * F(0), scale * F(0), scale * F(1), F(0), F(0)]
    if mirror:
        rs[0], rs[2] = -rs[0], -rs[2]
    t1m = (F(1), F(0), F(0), F(1), F(0.5 * w + float(sx)), F(0.5 * h + float(sy)))
    r = list(_mul(t1m, _mul(tuple(rs), t0m)))
    if all(_isint(v) for v in r[:4]):
        r[4], r[5] = F(int(float(r[4]) + 0.5)), F(int(float(r[5]) + 0.5))
    return tuple(r)


def port_generate(rng: np.random.Generator, h: int, w: int, crop: int,
                  min_scale: float = 0.5, max_scale: float = 2.0,
                  mirror: bool = True) -> tuple[float, float, float, bool]:
    """`generate`'s draws (caffe_rng_uniform = U[a, b), caffe_rng_rand() & 1) in its order."""
    rot_w, rot_h = F(crop), F(crop)
    top = min(F(max_scale), min(F(h) / rot_h, F(w) / rot_w))
    low = min(F(min_scale), top)
    scale = F(rng.uniform(low, top))
    scl_w = min(rot_w * scale, F(w))
    sx = F(rng.uniform(-(F(w) - scl_w) / 2, (F(w) - scl_w) / 2))
    scl_h = min(rot_h * scale, F(h))
    sy = F(rng.uniform(-(F(h) - scl_h) / 2, (F(h) - scl_h) / 2))
    flip = bool(mirror and rng.integers(0, 2 ** 32) & 1)
    return float(scale), float(sx), float(sy), flip


def port_forward(image: np.ndarray, affine: tuple, crop: int) -> np.ndarray:
    """`Forward_cpu` with mean 0 and scale 1: bilinear taps at x_in = a00 x + a01 y + t0."""
    a00, a01, a10, a11, t0, t1 = affine
    c, bh, bw = image.shape
    bot = image.astype(F)
    top = np.zeros((c, crop, crop), dtype=F)
    for ch in range(c):
        for y in range(crop):
            for x in range(crop):
                xx = a00 * F(x) + a01 * F(y) + t0
                yy = a10 * F(x) + a11 * F(y) + t1
                if 0 <= yy < bh and 0 <= xx < bw:
                    x0, y0, x1, y1 = int(xx), int(yy), int(xx + F(1)), int(yy + F(1))
                    x1, y1 = min(x1, bw - 1), min(y1, bh - 1)
                    wx, wy = F(x1) - xx, F(y1) - yy
                    top[ch, y, x] = (wx * wy * bot[ch, y0, x0] + (1 - wx) * wy * bot[ch, y0, x1]
                                     + wx * (1 - wy) * bot[ch, y1, x0]
                                     + (1 - wx) * (1 - wy) * bot[ch, y1, x1])
    return top


@pytest.mark.parametrize(("shape", "draw"), [
    ((3, 40, 56), (1.37, 3.25, -6.5, False)),   # window inside, fractional taps
    ((3, 40, 56), (0.62, -4.1, 2.7, True)),     # magnified and mirrored
    ((3, 40, 56), (1.0004, 2.3, -1.6, False)),  # s ~ 1: translations rounded to pixels
    ((3, 40, 56), (1.0004, 2.3, -1.6, True)),   # mirrored: C truncation, no rounding
    ((2, 12, 30), (0.75, 0.0, 0.0, False)),     # image shorter than the crop: s <= H/crop
    ((1, 33, 33), (2.0, 0.5, -0.5, True)),      # s = max: taps at the last pixel (clamped)
])
def test_sampling_matches_the_forward_loops(shape, draw) -> None:
    image = np.random.default_rng(3).normal(size=shape).astype(np.float32)
    crop = 16
    affine = port_affine(*draw, h=shape[1], w=shape[2], wo=crop, ho=crop)
    want = port_forward(image, affine, crop)
    got = CaffeTransformation(crop).apply(torch.from_numpy(image), CaffeDraw(*draw)).numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)


def test_out_of_image_taps_are_zero() -> None:
    """A draw outside the layer's ranges samples off the image: those pixels are 0."""
    image = np.ones((1, 20, 20), dtype=np.float32)
    draw = (1.0, 9.0, 0.0, False)  # window shifted right by more than its slack
    want = port_forward(image, port_affine(*draw, h=20, w=20, wo=16, ho=16), 16)
    got = CaffeTransformation(16).apply(torch.from_numpy(image), CaffeDraw(*draw)).numpy()
    assert (want == 0).any() and (want == 1).any()
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(("h", "w"), [(375, 500), (200, 300), (150, 180)])
def test_draws_follow_generate(h, w) -> None:
    """Same distributions as the port's draws (two-sample KS tests, fixed seeds), for a VOC
    landscape image, a small one and one smaller than 224 on both sides."""
    crop, n = 224, 3000
    rng = np.random.default_rng(7)
    ref = np.array([port_generate(rng, h, w, crop) for _ in range(n)])
    layer = CaffeTransformation(crop)
    torch.manual_seed(11)
    ours = [layer.make_params(h, w) for _ in range(n)]
    got = np.array([(d.scale, d.sx, d.sy, d.mirror) for d in ours])
    for column in range(3):
        assert stats.ks_2samp(got[:, column], ref[:, column]).pvalue > 1e-3
    assert abs(got[:, 3].mean() - 0.5) < 0.04
    s_max = min(2.0, h / crop, w / crop)
    assert got[:, 0].max() <= s_max + 1e-6 and got[:, 0].min() >= min(0.5, s_max) - 1e-6
    # the window of s * crop pixels always lies inside the image
    half = crop * got[:, 0] / 2
    assert np.all(np.abs(got[:, 1]) <= (w / 2 - half) + 1e-3)
    assert np.all(np.abs(got[:, 2]) <= (h / 2 - half) + 1e-3)


def test_crops_are_never_padded_and_test_passes_use_the_same_rule() -> None:
    """Every pixel of every crop comes from the image (no zero border), whatever its size,
    except the layer's own edge case: an image at most crop/2 on a side pins s to
    side/crop, and the mirrored grid (x_in = -s (x - crop/2) + W/2) then puts column 0 at
    x_in = W, outside the image; the port does the same."""
    layer = CaffeTransformation(32)
    torch.manual_seed(0)
    for h, w in ((20, 90), (64, 64), (33, 300), (17, 17)):
        ones = torch.ones(3, h, w)
        for _ in range(25):
            torch.testing.assert_close(layer(ones), torch.ones(3, 32, 32), rtol=0, atol=1e-6)
    ones = np.ones((1, 12, 12), dtype=np.float32)
    for flip in (False, True):
        draw = (0.375, 0.0, 0.0, flip)  # s = 12 / 32, the only value the layer can draw
        want = port_forward(ones, port_affine(*draw, h=12, w=12, wo=32, ho=32), 32)
        got = layer.apply(torch.from_numpy(ones), CaffeDraw(*draw)).numpy()
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
        assert (want[0, :, 0] == 0).all() == flip and (want[0, :, 1:] > 0.99).all()
    pipeline = T.build("voc_caffe_train", size=16)
    out = pipeline(Image.fromarray(np.full((24, 40, 3), 255, np.uint8)))
    assert out.shape == (3, 16, 16) and out.dtype == torch.float32
    torch.testing.assert_close(out, out[:, :1, :1].expand_as(out))  # flat stays flat
