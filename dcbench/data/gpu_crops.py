"""Crops of a whole batch of decoded images in a few kernels (issue 18).

The boxes are drawn for the whole batch at once on the host (no `.item()` per image, no
device synchronisation): `rrc_boxes` follows torchvision's RandomResizedCrop rule (up to
10 tries of an area fraction uniform in `scale` and a log-uniform aspect ratio in `ratio`,
the first try that fits wins, else a center crop clamped to the ratio range), vectorised
over images and tries; `center_boxes` is Resize(short side) + CenterCrop expressed as a box
in the original image. `crop_batch` then resamples every box to `size` x `size` with
`torchvision.ops.roi_align` (bilinear samples, `ceil(box / size)` of them per output pixel
and axis, averaged: an area-style anti-aliasing filter when shrinking) on canvases that
hold images of similar size (edge-replicated padding, so the border behaves like a resize
that clamps at the edge): one `roi_align` per canvas instead of one resize per image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torchvision.ops import roi_align

# a canvas may hold at most this many times the pixels of its images (padding waste bound)
_CANVAS_SLACK = 1.5


def rrc_boxes(heights: torch.Tensor, widths: torch.Tensor, scale: tuple[float, float],
              ratio: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
    """RandomResizedCrop boxes (top, left, h, w) as an int64 (n, 4) tensor, one per image of
    size `heights[i]` x `widths[i]`, drawn from `generator` in one go (40 numbers per image)."""
    h_img, w_img = heights.to(torch.float64), widths.to(torch.float64)
    n = len(h_img)
    area = (h_img * w_img)[:, None]
    u = torch.rand(n, 10, 4, generator=generator, dtype=torch.float64)
    target = area * (scale[0] + (scale[1] - scale[0]) * u[..., 0])
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * u[..., 1])
    w = torch.round(torch.sqrt(target * aspect))
    h = torch.round(torch.sqrt(target / aspect))
    fits = (w > 0) & (w <= w_img[:, None]) & (h > 0) & (h <= h_img[:, None])
    first = fits.to(torch.int8).argmax(1)  # the first try that fits (0 when none does)
    rows = torch.arange(n)
    h, w = h[rows, first], w[rows, first]
    top = torch.floor(u[rows, first, 2] * (h_img - h + 1))
    left = torch.floor(u[rows, first, 3] * (w_img - w + 1))
    # no try fits: the whole image, clamped to the ratio range, centred (torchvision's rule)
    in_ratio = w_img / h_img
    fb_w = torch.where(in_ratio > max(ratio), torch.round(h_img * max(ratio)), w_img)
    fb_h = torch.where(in_ratio < min(ratio), torch.round(w_img / min(ratio)), h_img)
    none = ~fits.any(1)
    h, w = torch.where(none, fb_h, h), torch.where(none, fb_w, w)
    top = torch.where(none, torch.div(h_img - fb_h, 2, rounding_mode="floor"), top)
    left = torch.where(none, torch.div(w_img - fb_w, 2, rounding_mode="floor"), left)
    return torch.stack([top, left, h, w], 1).to(torch.int64)


def center_boxes(heights: Sequence[int], widths: Sequence[int], resize: int, size: int
                 ) -> torch.Tensor:
    """Resize(`resize`, short side) + CenterCrop(`size`) as float64 (n, 4) boxes (top, left,
    h, w) in original pixels: torchvision's output sizes and crop offsets, mapped back."""
    boxes = []
    for h, w in zip(heights, widths, strict=True):
        short, long = (h, w) if h <= w else (w, h)
        new_long = int(resize * long / short)
        rh, rw = (resize, new_long) if h <= w else (new_long, resize)
        top, left = int(round((rh - size) / 2.0)), int(round((rw - size) / 2.0))
        sy, sx = h / rh, w / rw
        boxes.append((top * sy, left * sx, size * sy, size * sx))
    return torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4)


def canvas_groups(shapes: Sequence[tuple[int, int]]) -> list[list[int]]:
    """Images grouped (by area) so that a group's padded canvas wastes at most half its size."""
    order = sorted(range(len(shapes)), key=lambda i: (shapes[i][0] * shapes[i][1], shapes[i]))
    groups: list[list[int]] = []
    group: list[int] = []
    mh = mw = pixels = 0
    for i in order:
        h, w = shapes[i]
        nh, nw = max(mh, h), max(mw, w)
        if group and nh * nw * (len(group) + 1) > _CANVAS_SLACK * (pixels + h * w):
            groups.append(group)
            group, nh, nw, pixels = [], h, w, 0
        group.append(i)
        mh, mw, pixels = nh, nw, pixels + h * w
    if group:
        groups.append(group)
    return groups


def crop_batch(images: Sequence[torch.Tensor], boxes: torch.Tensor, size: int) -> torch.Tensor:
    """float32 (n, C, size, size) resampled crops (0..255 scale) of uint8 (C, H, W) `images`
    at `boxes` (top, left, h, w; n x 4, any float/int dtype, on the host)."""
    device = images[0].device
    channels = images[0].shape[0]
    out = torch.empty(len(images), channels, size, size, dtype=torch.float32, device=device)
    boxes = boxes.to(torch.float64)
    for group in canvas_groups([(int(im.shape[-2]), int(im.shape[-1])) for im in images]):
        mh = max(int(images[i].shape[-2]) for i in group)
        mw = max(int(images[i].shape[-1]) for i in group)
        canvas = torch.empty(len(group), channels, mh, mw, dtype=torch.float32, device=device)
        for j, i in enumerate(group):  # one copy (uint8 -> float32) + edge replication
            h, w = int(images[i].shape[-2]), int(images[i].shape[-1])
            canvas[j, :, :h, :w].copy_(images[i])
            if w < mw:
                canvas[j, :, :h, w:] = canvas[j, :, :h, w - 1 : w]
            if h < mh:
                canvas[j, :, h:, :] = canvas[j, :, h - 1 : h, :]
        b = boxes[group]
        rois = torch.stack([torch.arange(len(group), dtype=torch.float64), b[:, 1], b[:, 0],
                            b[:, 1] + b[:, 3], b[:, 0] + b[:, 2]], 1).to(torch.float32)
        crops = roi_align(canvas, rois.to(device, non_blocking=True), [size, size],
                          spatial_scale=1.0, sampling_ratio=-1, aligned=True)
        out[torch.as_tensor(group, device=device)] = crops
    return out


__all__ = ["canvas_groups", "center_boxes", "crop_batch", "rrc_boxes"]
