"""Targets moved by dcbench's draws (`data.planned_targets`) against torchvision's own joint
v2 transforms and the detection flip arithmetic written out by hand."""

from __future__ import annotations

import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from dcbench.data.crop_plan import Draws, Unexpressible, View, plan_transform
from dcbench.data.planned_targets import boxes_by_draws, joint_plan, mask_by_draws
from dcbench.data.transforms import IMAGENET_MEAN, IMAGENET_STD


def joint(*geometry: v2.Transform) -> v2.Compose:
    return v2.Compose([v2.ToImage(), *geometry, v2.ToDtype(torch.float32, scale=True),
                       v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


@pytest.mark.parametrize("geometry", [
    (v2.RandomHorizontalFlip(),),
    (v2.RandomResizedCrop(24, scale=(0.1, 0.6)), v2.RandomHorizontalFlip()),
    (v2.Resize(40), v2.RandomCrop(32), v2.RandomHorizontalFlip()),
    (v2.Resize(45), v2.Resize((32, 32)), v2.RandomHorizontalFlip()),  # two resizes, chained
])
def test_masks_move_as_the_joint_v2_transform_moves_them(geometry) -> None:
    """Same seed: the plan draws the v2 transform's geometry, and the mask moved by the draws
    equals the mask v2 transformed together with its image (nearest resampling)."""
    transform = joint(*geometry)
    plan = plan_transform(transform)
    assert plan is not None
    gen = torch.Generator().manual_seed(0)
    for seed in range(12):
        height, width = (int(v) for v in torch.randint(40, 90, (2,), generator=gen))
        image = torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=gen)
        mask = torch.randint(0, 21, (height, width), dtype=torch.uint8, generator=gen)
        torch.manual_seed(seed)
        _, expected = transform(image, tv_tensors.Mask(mask))
        torch.manual_seed(seed)
        got = mask_by_draws(mask, plan.draw(height, width))
        assert got.dtype == torch.uint8 and type(got) is torch.Tensor
        assert torch.equal(got, expected.as_subclass(torch.Tensor)), seed


def test_boxes_follow_a_mirror_with_the_detection_arithmetic() -> None:
    boxes = torch.tensor([[10.0, 5.0, 30.0, 20.0], [0.0, 0.0, 100.0, 60.0]])
    plain = Draws((0, 0, 60, 100), None, (View(0, 0, 60, 100, False),))
    mirrored = Draws((0, 0, 60, 100), None, (View(0, 0, 60, 100, True),))
    assert torch.equal(boxes_by_draws(boxes, plain), boxes)
    assert torch.equal(boxes_by_draws(boxes, mirrored),
                       torch.tensor([[70.0, 5.0, 90.0, 20.0], [0.0, 0.0, 100.0, 60.0]]))


@pytest.mark.parametrize("draws", [
    Draws((0, 5, 60, 90), None, (View(0, 0, 60, 90, False),)),  # a crop
    Draws((0, 0, 60, 100), (30, 50), (View(0, 0, 30, 50, False),)),  # a resize
    Draws((0, 0, 60, 100), None, (View(0, 0, 60, 100, False),) * 2),  # several views
])
def test_boxes_refuse_geometry_they_cannot_follow(draws: Draws) -> None:
    with pytest.raises(Unexpressible):
        boxes_by_draws(torch.zeros(1, 4), draws)


def test_a_mask_follows_one_view_only() -> None:
    draws = Draws((0, 0, 10, 10), None, (View(0, 0, 5, 5, False),) * 10)
    with pytest.raises(Unexpressible):
        mask_by_draws(torch.zeros(10, 10, dtype=torch.uint8), draws)


def test_joint_plan_needs_both_methods() -> None:
    class Half:
        def joint_plan(self):
            return plan_transform(joint(v2.RandomHorizontalFlip()))

    class Whole(Half):
        def planned_target(self, index, shape, plan):
            return None

    assert joint_plan(Half()) is None and joint_plan(object()) is None
    assert joint_plan(Whole()) is not None
