"""A torchvision v2 pipeline as geometry: draw its crop boxes without decoding the image.

The DALI input pipeline (`data.dali_pipeline`) must produce the crops the PIL path would
produce for the same seed. So dcbench, not DALI, draws them: `plan_transform` reads one of
the registered pipelines (`data.transforms`: Resize, CenterCrop, RandomCrop,
RandomResizedCrop, RandomHorizontalFlip, TenCrop, then ToDtype + Normalize) into a
`CropPlan`, and `CropPlan.draw(height, width)` walks the same steps over the image's size
alone, calling each random transform's own `make_params` (and RandomHorizontalFlip's
`torch.rand(1) >= p`) on torch's global RNG in the same order as `transform(image)` would.
The PIL path and the plan therefore consume the same random numbers and give the same boxes.

A drawn `Draws` is: a region of the (EXIF-oriented) image, the size it is resized to (or
two sizes, `first` then `resize`, for two adjacent Resize steps such as the SVM features'
short-side resize + square squash), and one or ten views (windows of the resized region,
each possibly mirrored). `apply_draws` renders those on a decoded uint8 tensor with
torchvision's functional ops (the PIL path's kernels): the per-sample fallback when DALI
rejects a file, and the reference in tests. Transforms the plan cannot express
(ScaleJitterCrop, joint image + mask transforms, padding crops, a crop between two resizes,
three resizes) return `None` from `plan_transform` (the caller keeps the PIL path) or raise
`Unexpressible` for one image (that image takes the PIL path).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import InterpolationMode, v2
from torchvision.transforms.v2 import functional as F
from torchvision.transforms.v2.functional._geometry import _compute_resized_output_size

from dcbench.data.transforms import StackCrops

Box = tuple[int, int, int, int]  # top, left, height, width


class Unexpressible(ValueError):
    """This image's crops cannot be drawn by the plan (e.g. a crop larger than the image)."""


@dataclass(frozen=True)
class View:
    """One output crop: a window (top, left, h, w) of the resized region, mirrored or not."""

    top: int
    left: int
    height: int
    width: int
    flip: bool


@dataclass(frozen=True)
class Draws:
    """The geometry of one image's output: `roi` of the oriented image, resized to `resize`
    (None: kept at its size), then each of `views` cut out (and mirrored where flagged).
    `first` (None: one resize) is an intermediate size: the region is resized to `first`,
    rounded to uint8 pixels as torchvision does, then that to `resize` (two resamplings)."""

    roi: Box
    resize: tuple[int, int] | None
    views: tuple[View, ...]
    first: tuple[int, int] | None = None


@dataclass
class CropPlan:
    """The steps of a v2 pipeline that move pixels, plus its normalisation."""

    steps: list[Any]
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    n_views: int = 1
    key: str = field(default="")

    def draw(self, height: int, width: int) -> Draws:
        """The crops for an image of `height` x `width`, drawn from torch's global RNG exactly
        as the pipeline would draw them (same calls, same order)."""
        return _walk(self.steps, height, width)


def _fake(height: int, width: int) -> list[Any]:
    """A zero-storage image of the given size for `make_params` (it only reads the size)."""
    return [tv_tensors.Image(torch.zeros(1, 1, 1, dtype=torch.uint8).expand(3, height, width))]


class _State:
    """The walk's state: the source region, the resize, the window, and the mirror flag.

    The current image is mirror?(window of resize(region of the source)); a box in current
    coordinates maps to un-mirrored coordinates by x -> W - x - w."""

    def __init__(self, height: int, width: int) -> None:
        self.roi: Box = (0, 0, height, width)
        self.resize: tuple[int, int] | None = None
        self.first: tuple[int, int] | None = None  # the first of two chained resizes
        self.window: Box = (0, 0, height, width)
        self.mirrored = False

    @property
    def size(self) -> tuple[int, int]:
        return self.window[2], self.window[3]

    def crop(self, top: int, left: int, height: int, width: int) -> None:
        """Cut (top, left, h, w) of the current image."""
        cur_h, cur_w = self.size
        if not (top >= 0 and left >= 0 and top + height <= cur_h and left + width <= cur_w
                and height > 0 and width > 0):
            raise Unexpressible(f"crop {height}x{width} outside the {cur_h}x{cur_w} image")
        if self.mirrored:
            left = cur_w - left - width
        wt, wl = self.window[:2]
        if self.resize is None:  # still in source pixels: the region shrinks
            rt, rl = self.roi[:2]
            self.roi = (rt + wt + top, rl + wl + left, height, width)
            self.window = (0, 0, height, width)
        else:
            self.window = (wt + top, wl + left, height, width)

    def view(self, top: int, left: int, height: int, width: int, flip: bool) -> View:
        """A final view of the current image (mirrored back to source orientation)."""
        cur_w = self.size[1]
        if self.mirrored:
            left = cur_w - left - width
        return View(self.window[0] + top, self.window[1] + left, height, width,
                    flip != self.mirrored)


def _resize(state: _State, size: list[int]) -> None:
    """Resize the current image: the region's resize, or a second resize of the whole resized
    region (chained). The output size is torchvision's own rounding
    (`_compute_resized_output_size`: Resize(int) gives the short side `size` and the long
    side int(size * long / short); Resize((h, w)) gives h x w)."""
    whole = state.resize or state.roi[2:]
    if state.first is not None or state.window != (0, 0, *whole):
        raise Unexpressible("a resize after a crop of a resized image, or a third resize")
    out = _compute_resized_output_size(state.size, list(size))
    state.first = state.resize
    state.resize = (int(out[0]), int(out[1]))
    state.window = (0, 0, *state.resize)


def _walk(steps: Sequence[Any], height: int, width: int) -> Draws:
    state = _State(height, width)
    views: tuple[View, ...] | None = None
    for step in steps:
        if isinstance(step, v2.RandomHorizontalFlip):
            if not bool(torch.rand(1) >= step.p):
                state.mirrored = not state.mirrored
        elif isinstance(step, v2.RandomResizedCrop):
            p = step.make_params(_fake(*state.size))
            state.crop(p["top"], p["left"], p["height"], p["width"])
            _resize(state, list(step.size))
        elif isinstance(step, v2.Resize):
            _resize(state, step.size)
        elif isinstance(step, v2.CenterCrop):
            ch, cw = step.size
            h, w = state.size
            state.crop(int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0)), ch, cw)
        elif isinstance(step, v2.RandomCrop):
            p = step.make_params(_fake(*state.size))
            if p["needs_pad"]:
                raise Unexpressible("a RandomCrop that pads")
            state.crop(p["top"], p["left"], p["height"], p["width"])
        elif isinstance(step, v2.TenCrop):
            views = _ten_views(state, step.size)
    if views is None:
        views = (state.view(0, 0, *state.size, False),)
    return Draws(state.roi, state.resize, views, state.first)


def _ten_views(state: _State, size: Sequence[int]) -> tuple[View, ...]:
    """TenCrop: the five crops of the image, then the five of its mirror (F.ten_crop)."""
    ch, cw = int(size[0]), int(size[1])
    h, w = state.size
    if ch > h or cw > w:
        raise Unexpressible(f"TenCrop {ch}x{cw} larger than the {h}x{w} image")
    five = [(0, 0), (0, w - cw), (h - ch, 0), (h - ch, w - cw),
            (int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0)))]
    plain = [state.view(t, left, ch, cw, False) for t, left in five]
    # a crop at x of the mirrored image is the mirror of the crop at w - x - cw
    mirrored = [state.view(t, w - left - cw, ch, cw, True) for t, left in five]
    return tuple(plain + mirrored)


_PASSIVE = (v2.ToImage, StackCrops)


def _chain_ok(steps: Sequence[Any]) -> bool:
    """At most two resizes, and a second one only as a plain Resize right after the first
    (of its whole output): the chain `Draws.first` expresses."""
    at = [i for i, s in enumerate(steps) if isinstance(s, (v2.Resize, v2.RandomResizedCrop))]
    if len(at) <= 1:
        return True
    return len(at) == 2 and at[1] == at[0] + 1 and type(steps[at[1]]) is v2.Resize


def plan_transform(transform: Any) -> CropPlan | None:
    """The `CropPlan` of a v2 pipeline, or None when any step is not expressible (the caller
    then keeps the PIL path: never an approximation)."""
    if not isinstance(transform, v2.Compose):
        return None
    steps: list[Any] = []
    plan = CropPlan(steps)
    scaled = False
    for step in transform.transforms:
        if isinstance(step, _PASSIVE):
            continue
        if isinstance(step, v2.ToDtype):
            if step.dtype not in (torch.float32, {tv_tensors.Image: torch.float32}) or \
                    not step.scale:
                return None
            scaled = True
        elif isinstance(step, v2.Normalize):
            if not scaled or len(step.mean) != 3:
                return None
            plan.mean, plan.std = tuple(step.mean), tuple(step.std)
        elif scaled:
            return None  # geometry after normalisation (ScaleJitterCrop and the like)
        elif isinstance(step, (v2.Resize, v2.RandomResizedCrop)):
            if str(getattr(step.interpolation, "value", step.interpolation)) != \
                    InterpolationMode.BILINEAR.value or step.antialias is False \
                    or getattr(step, "max_size", None) is not None or len(step.size) == 0:
                return None
            steps.append(step)
        elif isinstance(step, v2.TenCrop):
            if step.vertical_flip:
                return None
            steps.append(step)
            plan.n_views = 10
        elif isinstance(step, v2.RandomCrop):
            if step.padding is not None or step.pad_if_needed:
                return None
            steps.append(step)
        elif isinstance(step, (v2.CenterCrop, v2.RandomHorizontalFlip)):
            steps.append(step)
        else:
            return None
    if not scaled or not _chain_ok(steps):
        return None
    plan.key = repr(transform)
    return plan


def apply_draws(image: torch.Tensor, draws: Draws, mean: Sequence[float],
                std: Sequence[float]) -> torch.Tensor:
    """Render `draws` on a uint8 (3, H, W) image with torchvision's kernels: (3, h, w), or
    (views, 3, h, w) for several views, normalised float32 (as the PIL pipeline returns)."""
    top, left, h, w = draws.roi
    region = F.crop(image, top, left, h, w)
    if draws.first is not None:  # the first of two resamplings (uint8 in, uint8 out)
        region = F.resize(region, list(draws.first), antialias=True)
    if draws.resize is not None:
        region = F.resize(region, list(draws.resize), antialias=True)
    crops = []
    for view in draws.views:
        crop = F.crop(region, view.top, view.left, view.height, view.width)
        crops.append(F.horizontal_flip(crop) if view.flip else crop)
    out = torch.stack(crops) if len(crops) > 1 else crops[0]
    out = F.to_dtype(out, torch.float32, scale=True)
    return F.normalize(out, list(mean), list(std))


__all__ = ["CropPlan", "Draws", "Unexpressible", "View", "apply_draws", "plan_transform"]
