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
from dataclasses import dataclass

import torch
from torchvision.ops import roi_align


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


@dataclass(frozen=True)
class AtlasLayout:
    """Where each image sits in the one canvas (atlas) of a batch: interior top-left corners
    (`tops`, `lefts`; every image has a 1-pixel replicated border around it), the atlas size,
    and the shelves (rows of images) it was packed into (`shelf_tops`, `shelf_of` per image)."""

    tops: list[int]
    lefts: list[int]
    height: int
    width: int
    shelf_tops: list[int]
    shelf_of: list[int]


_WIDTHS = (0.7, 1.0, 1.5, 2.0)  # atlas widths tried, in units of sqrt(total area)
_INT32_LIMIT = 2**31  # gather indices in int32 below this many pixels (int64 above)


def _pack(padded: Sequence[tuple[int, int]], width: int) -> AtlasLayout:
    """First-fit decreasing-height shelf packing of padded (h, w) slots into `width`."""
    n = len(padded)
    tops, lefts, shelf_of = [0] * n, [0] * n, [0] * n
    shelves: list[list[int]] = []  # [top, height, next free x]
    height = 0
    for i in sorted(range(n), key=lambda i: (-padded[i][0], -padded[i][1], i)):
        ph, pw = padded[i]
        s = next((k for k, sh in enumerate(shelves) if sh[2] + pw <= width), len(shelves))
        if s == len(shelves):  # no shelf has room: open one under the last (taller first)
            shelves.append([height, ph, 0])
            height += ph
        shelf = shelves[s]
        tops[i], lefts[i], shelf_of[i] = shelf[0] + 1, shelf[2] + 1, s
        shelf[2] += pw
    return AtlasLayout(tops, lefts, height, width, [sh[0] for sh in shelves], shelf_of)


def atlas_layout(shapes: Sequence[tuple[int, int]]) -> AtlasLayout:
    """Pack images of `shapes` (h, w), each with a 1-pixel border, into one canvas: shelves
    (first fit, tallest first) for a few atlas widths around the square root of the total
    area, the smallest result kept. Padding stays a small share of the pixels whatever the
    size mix (about 5-12% on ImageNet-like batches; one huge photo does not pad 255 others
    to its size)."""
    padded = [(h + 2, w + 2) for h, w in shapes]
    side = math.isqrt(sum(h * w for h, w in padded)) + 1
    widest = max(w for _, w in padded)
    layouts = [_pack(padded, max(widest, int(side * f))) for f in _WIDTHS]
    return min(layouts, key=lambda lay: lay.height * lay.width)


def _atlas(images: Sequence[torch.Tensor], layout: AtlasLayout, table: torch.Tensor
           ) -> torch.Tensor:
    """float32 (1, C, H, W) atlas of `images` (each with its replicated 1-pixel border),
    built by ONE gather from their concatenated pixels: every atlas pixel finds its image
    (two `searchsorted`: its shelf, then the image whose slot starts left of it) and reads
    the clamped pixel of that image. `table` holds, on the device, the per-image int64
    columns (slot key, top, left, height, width, plane offset), ordered by slot key, and
    the shelf tops."""
    n, device = len(images), images[0].device
    channels = images[0].shape[0]
    flat = torch.cat([im.reshape(channels, -1) for im in images], 1)
    total = flat.shape[1]
    fits = max(total, layout.width * len(layout.shelf_tops)) < _INT32_LIMIT
    idx_dtype = torch.int32 if fits else torch.int64
    cols = table[: 6 * n].view(6, n).to(idx_dtype)
    key, top, left, height, width, base = cols
    shelf_tops = table[6 * n :].to(idx_dtype)
    ys = torch.arange(layout.height, device=device, dtype=idx_dtype)
    xs = torch.arange(layout.width, device=device, dtype=idx_dtype)
    shelf = torch.searchsorted(shelf_tops, ys, right=True, out_int32=idx_dtype == torch.int32)
    slot = (shelf.sub_(1) * layout.width)[:, None] + xs[None, :]
    owner = torch.searchsorted(key, slot, right=True, out_int32=idx_dtype == torch.int32)
    owner = owner.sub_(1).clamp_(min=0).long()
    del slot
    yy = (ys[:, None] - top[owner]).clamp_(min=0)
    yy = torch.minimum(yy, height[owner] - 1)
    xx = (xs[None, :] - left[owner]).clamp_(min=0)
    xx = torch.minimum(xx, width[owner] - 1)
    src = yy.mul_(width[owner]).add_(xx).add_(base[owner]).view(-1)
    del yy, xx, owner
    atlas = flat.index_select(1, src)  # int32 indices where they fit: half the memory
    return atlas.view(1, channels, layout.height, layout.width).to(torch.float32)


def crop_batch(images: Sequence[torch.Tensor], boxes: torch.Tensor, size: int,
               flips: torch.Tensor | None = None) -> torch.Tensor:
    """float32 (n, C, size, size) resampled crops (0..255 scale) of uint8 (C, H, W) `images`
    at `boxes` (top, left, h, w; n x 4, any float/int dtype, on the host), mirrored where
    `flips` (host bool, n) is set.

    One atlas for the whole batch (`atlas_layout`), one `roi_align`, and the host numbers
    (layout table, boxes, flips) cross to the device in ONE copy (pinned and asynchronous on
    CUDA): nothing here waits for the device, whatever the mix of image sizes."""
    device = images[0].device
    n = len(images)
    shapes = [(int(im.shape[-2]), int(im.shape[-1])) for im in images]
    layout = atlas_layout(shapes)
    heights = torch.tensor([h for h, _ in shapes], dtype=torch.float64)
    widths = torch.tensor([w for _, w in shapes], dtype=torch.float64)
    tops = torch.tensor(layout.tops, dtype=torch.float64)
    lefts = torch.tensor(layout.lefts, dtype=torch.float64)
    shelf = torch.tensor(layout.shelf_of, dtype=torch.float64)
    base = torch.cumsum(heights * widths, 0) - heights * widths
    # a slot starts at its border column: key = shelf * atlas width + left - 1 (sorted)
    key = shelf * layout.width + lefts - 1
    b = boxes.to(torch.float64).reshape(n, 4)
    x1, y1 = lefts + b[:, 1], tops + b[:, 0]
    rois = torch.stack([torch.zeros(n, dtype=torch.float64), x1, y1, x1 + b[:, 3],
                        y1 + b[:, 2]], 1).to(torch.float32).to(torch.float64)
    mirror = (flips.to(torch.float64) if flips is not None
              else torch.zeros(n, dtype=torch.float64))
    order = torch.argsort(key)  # the columns in slot order: `searchsorted` finds owners
    columns = torch.stack([key, tops, lefts, heights, widths, base])[:, order].reshape(-1)
    host = torch.cat([columns,
                      torch.tensor(layout.shelf_tops, dtype=torch.float64),
                      rois.reshape(-1), mirror])
    if device.type == "cuda":
        host = host.pin_memory()
    moved = host.to(device, non_blocking=True)
    table_len = 6 * n + len(layout.shelf_tops)
    atlas = _atlas(images, layout, moved[:table_len].to(torch.int64))
    dev_rois = moved[table_len : table_len + 5 * n].view(n, 5).to(torch.float32)
    out = roi_align(atlas, dev_rois, [size, size], spatial_scale=1.0, sampling_ratio=-1,
                    aligned=True)
    if flips is not None and bool(flips.any()):  # host tensor: no device round trip
        flip = moved[table_len + 5 * n :].bool()[:, None, None, None]
        out = torch.where(flip, out.flip(-1), out)
    return out


__all__ = ["AtlasLayout", "atlas_layout", "center_boxes", "crop_batch", "rrc_boxes"]
