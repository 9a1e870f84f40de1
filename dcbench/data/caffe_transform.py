"""The rule of Caffe's `TransformationLayer`, the augmentation behind VOC07 `all` 73.7.

philkr/voc-classification `train_cls.py` (run by DeepCluster's `eval_voc_classif_all.sh`)
reads VOC through `TransformingFastHDF5Input`, which feeds each stored image, at its own
size, to the `TransformationLayer` of philkr's Caffe `future` branch (public in the
SimuJenni/caffe fork: `src/caffe/layers/transformation_layer.cpp` / `.cu`) with
`crop_size` = the network's input size, `min_scale` 0.5, `max_scale` 2.0, `mirror`. The
rule (no rotation, as `train_cls.py` leaves `rotate` off), per image of H x W input pixels
and a crop x crop output:

- `min_scale` / `max_scale` are *input pixels per output pixel*:
  s ~ U(min(min_scale, s_max), s_max) with s_max = min(max_scale, H / crop, W / crop), so
  the window of s * crop input pixels always fits inside the image (never padded);
- the window centre is offset from the image centre by sx ~ U(-(W - s crop)/2, +(W - s crop)/2)
  (sy likewise), a real number, not an integer;
- output pixel (x, y) samples the input at x_in = s (x - crop/2) + W/2 + sx (pixel indices as
  coordinates: no half-pixel shift), or x_in = -s (x - crop/2) + W/2 + sx when mirrored
  (probability 1/2); when s is within 1e-3 of an integer and the image is not mirrored, the
  translations are rounded to whole pixels;
- bilinear interpolation between pixels trunc(x_in) and min(trunc(x_in + 1), W - 1) with
  weight (x1 - x_in) on the first; a sample outside [0, W) x [0, H) is 0 (the mean colour);
- draws in the layer's order: s, sx, sy, mirror; all arithmetic in float32.

The layer has no TRAIN/TEST switch, so `train_cls.py`'s 10 summed test passes use the same
random rule. Draws come from torch's global RNG (the protocols seed it per item).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn


@dataclasses.dataclass(frozen=True)
class CaffeDraw:
    """One image's random draws: scale (input px per output px), centre offsets, mirror."""

    scale: float
    sx: float
    sy: float
    mirror: bool


def scale_range(height: int, width: int, crop: int, min_scale: float,
                max_scale: float) -> tuple[float, float]:
    """The layer's (low, high) for s: the window s * crop must fit the image."""
    high = min(np.float32(max_scale), np.float32(height / crop), np.float32(width / crop))
    return float(min(np.float32(min_scale), high)), float(high)


def _isint(value: np.float32) -> bool:
    """The layer's `isint`: |v - int(v + 0.5)| < 1e-3 (C truncation: false for v near -1)."""
    return bool(abs(value - np.float32(int(float(value) + 0.5))) < 1e-3)


def caffe_affine(draw: CaffeDraw, height: int, width: int,
                 crop: int) -> tuple[np.float32, np.float32, np.float32, np.float32]:
    """(a00, t0, a11, t1): x_in = a00 x + t0, y_in = a11 y + t1, as the layer composes them."""
    f = np.float32
    scale = f(draw.scale)
    a00, a11 = (-scale if draw.mirror else scale), scale
    # T1 * RS * T0 with T0 = shift(-crop/2), T1 = shift(W/2 + sx, H/2 + sy); the layer
    # builds T1's entries in double from the float draws, then stores them as float
    t0 = a00 * f(-0.5 * crop) + f(0.5 * width + float(f(draw.sx)))
    t1 = a11 * f(-0.5 * crop) + f(0.5 * height + float(f(draw.sy)))
    if _isint(a00) and _isint(a11):  # (a01 = a10 = 0 are integers)
        t0, t1 = f(int(float(t0) + 0.5)), f(int(float(t1) + 0.5))
    return a00, t0, a11, t1


def _taps(coords: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor,
                                                       torch.Tensor, torch.Tensor]:
    """(first index, second index, weight of the first, inside) along one axis."""
    inside = (coords >= 0) & (coords < length)
    safe = torch.where(inside, coords, torch.zeros_like(coords))
    first = safe.trunc().long()
    second = (safe + 1).trunc().long().clamp(max=length - 1)
    return first, second, second.to(coords.dtype) - safe, inside


class CaffeTransformation(nn.Module):
    """Caffe `TransformationLayer` (no rotation) on a (C, H, W) float tensor -> (C, crop, crop).

    Apply it to the normalised image: the layer subtracts the mean after sampling and the
    interpolation weights sum to one, so the result is the same and the zero fill is the
    mean colour either way.
    """

    def __init__(self, size: int, scale: tuple[float, float] = (0.5, 2.0),
                 mirror: bool = True) -> None:
        super().__init__()
        self.size, self.mirror = int(size), bool(mirror)
        self.scale = (float(scale[0]), float(scale[1]))

    def make_params(self, height: int, width: int) -> CaffeDraw:
        """Draw s, sx, sy and mirror for an H x W image (the layer's order and ranges)."""
        low, high = scale_range(height, width, self.size, *self.scale)
        scale = float(np.float32(low + (high - low) * float(torch.rand((), dtype=torch.float64))))
        offsets = []
        for length in (width, height):
            slack = (length - min(self.size * scale, length)) / 2
            offsets.append(slack * (2 * float(torch.rand((), dtype=torch.float64)) - 1))
        mirror = self.mirror and bool(torch.randint(0, 2, ()))
        return CaffeDraw(scale, offsets[0], offsets[1], mirror)

    def apply(self, image: torch.Tensor, draw: CaffeDraw) -> torch.Tensor:
        """The layer's bilinear sampling of `image` for one draw (float32 arithmetic)."""
        height, width = image.shape[-2:]
        a00, t0, a11, t1 = caffe_affine(draw, height, width, self.size)
        grid = torch.arange(self.size, dtype=torch.float32)
        x0, x1, wx, x_in = _taps(grid * float(a00) + float(t0), width)
        y0, y1, wy, y_in = _taps(grid * float(a11) + float(t1), height)
        img = image.to(torch.float32)
        rows0, rows1 = img[:, y0], img[:, y1]  # (C, crop, W)
        wx, wy = wx[None, None, :], wy[None, :, None]
        value = (wx * wy * rows0[:, :, x0] + (1 - wx) * wy * rows0[:, :, x1]
                 + wx * (1 - wy) * rows1[:, :, x0] + (1 - wx) * (1 - wy) * rows1[:, :, x1])
        inside = (y_in[:, None] & x_in[None, :])[None]
        return torch.where(inside, value, torch.zeros_like(value)).to(image.dtype)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.apply(image, self.make_params(*image.shape[-2:]))
