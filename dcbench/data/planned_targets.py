"""The worker side of the DALI input pipeline for datasets whose target moves with the image.

voc12-seg (image + mask, jointly flipped) and voc07-det (image + boxes, flipped together)
transform a target with the image, so their items cannot be a `planned_images.PlannedImages`
(image + fixed label). A dataset joins the DALI pipeline by offering two methods:

- `joint_plan() -> CropPlan | None`: the geometry of its image transform (None: PIL only);
- `planned_target(index, shape, plan) -> (Draws, target) | None`: for an image of oriented
  `shape` that DALI will decode, draw its geometry with `plan.draw` (the same random calls
  in the same order as its PIL `__getitem__`) and return the target transformed by those
  draws: a mask with `mask_by_draws` (nearest resampling, the v2 mask kernels), boxes with
  `boxes_by_draws` (the flip arithmetic of the PIL path). None when the PIL item would be
  `None` without drawing anything (a mask that is missing or of another size): the item then
  is the dataset's own PIL item, which reports it.

`PlannedTargets` makes items `(Encoded | tensor | None, target, index)` in the DataLoader
worker: `Encoded(bytes, draws)` for a JPEG that `sniff_jpeg` accepts, else the dataset's own
PIL item. `data.dali_targets.DaliTargetLoader` decodes the `Encoded` ones with DALI and hands
every batch to the protocol's collate, as the PIL loader does.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from dcbench.data.crop_plan import CropPlan, Draws, Unexpressible
from dcbench.data.planned_images import Encoded, read_jpeg, seeded


class JointPlanned(Protocol):
    """A dataset whose image transform moves a target too (see the module docstring)."""

    samples: list[tuple[str, Any]]

    def joint_plan(self) -> CropPlan | None: ...

    def planned_target(self, index: int, shape: tuple[int, int],
                       plan: CropPlan) -> tuple[Draws, Any] | None: ...

    def __getitem__(self, index: int) -> tuple[Any, Any, int]: ...


def joint_plan(dataset: Any) -> CropPlan | None:
    """The dataset's `joint_plan()`, or None when it has none (PIL only)."""
    method = getattr(dataset, "joint_plan", None)
    if method is None or not hasattr(dataset, "planned_target"):
        return None
    plan = method()
    return plan if isinstance(plan, CropPlan) else None


def mask_by_draws(mask: torch.Tensor, draws: Draws) -> torch.Tensor:
    """A (H, W) class-index mask moved by `draws` as v2 moves a `tv_tensors.Mask` with its
    image (crop, nearest resize, crop, mirror); one view only (a mask has no TenCrop)."""
    if len(draws.views) != 1:
        raise Unexpressible("a mask follows one view, not several")
    out = tv_tensors.Mask(mask)
    top, left, height, width = draws.roi
    out = F.crop(out, top, left, height, width)
    if draws.first is not None:  # two chained resizes, each nearest
        out = F.resize(out, list(draws.first))
    if draws.resize is not None:
        out = F.resize(out, list(draws.resize))  # Mask: nearest, as the joint v2 transform
    view = draws.views[0]
    out = F.crop(out, view.top, view.left, view.height, view.width)
    if view.flip:
        out = F.horizontal_flip(out)
    return out.as_subclass(torch.Tensor)


def boxes_by_draws(boxes: torch.Tensor, draws: Draws) -> torch.Tensor:
    """(N, 4) continuous (x1, y1, x2, y2) boxes moved by `draws`, with the PIL path's own
    arithmetic (voc07-det: `width - x` for a mirror). Only the full image, mirrored or not,
    is expressed: a crop or resize would need the clipping rules of a box transform."""
    view = draws.views[0] if len(draws.views) == 1 else None
    height, width = draws.roi[2:]
    if (view is None or draws.roi[:2] != (0, 0) or draws.resize is not None
            or (view.top, view.left, view.height, view.width) != (0, 0, height, width)):
        raise Unexpressible("boxes follow the full image only (mirrored or not)")
    if not view.flip:
        return boxes
    return torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]],
                       dim=1)


class PlannedTargets(Dataset):
    """Items `(Encoded | tensor | None, target, index)` of a `JointPlanned` dataset (see the
    module docstring); `seed_item` reproduces per-item seeded views (`SeededView`)."""

    def __init__(self, base: JointPlanned, plan: CropPlan, seed_item: Any = None) -> None:
        self.base = base
        self.plan = plan
        self.seed_item = seed_item
        self.samples: list[tuple[str, Any]] = list(base.samples)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, Any, int]:
        data, shape = read_jpeg(self.samples[index][0])
        with seeded(self.seed_item, index):
            if shape is not None:
                state = torch.get_rng_state()
                try:
                    planned = self.base.planned_target(index, shape, self.plan)
                    if planned is not None:
                        draws, target = planned
                        return Encoded(np.frombuffer(data, dtype=np.uint8), draws), target, index
                except Unexpressible:  # this image's geometry: the PIL item draws afresh
                    pass
                torch.set_rng_state(state)
            return self.base[index]


def keep_items(items: list[tuple[Any, Any, int]]) -> list[tuple[Any, Any, int]]:
    """The DataLoader collate of `PlannedTargets`: the items as they are (bytes travel as
    numpy arrays); the protocol's collate runs once DALI has decoded them."""
    return list(items)


__all__ = ["JointPlanned", "PlannedTargets", "boxes_by_draws", "joint_plan", "keep_items",
           "mask_by_draws"]
