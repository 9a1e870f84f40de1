"""`crop_plan`: the crops of a torchvision pipeline drawn from the image size alone consume
torch's RNG exactly as the pipeline does, and rendering them gives the pipeline's tensor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from dcbench.data import transforms as T
from dcbench.data.crop_plan import Unexpressible, apply_draws, plan_transform
from dcbench.protocols.svm.voc_features import squash_transform

PIPELINES = {
    "center_crop": lambda: T.center_crop(64, 73),
    "deepcluster_train": lambda: T.deepcluster_train(64),
    "linear_train": lambda: T.linear_train(64, 73),
    "ten_crop": lambda: T.ten_crop(64, 73),
    "voc_train": lambda: T.voc_train(64),
    "plain": lambda: T.plain(),
    # the SVM features' squash: Resize(short side) then Resize((size, size)), two resamplings
    "squash": lambda: squash_transform(64, 73, T.IMAGENET_MEAN, T.IMAGENET_STD),
}


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_draws_match_the_pipeline_bit_for_bit(name: str) -> None:
    """Same seed: the plan leaves torch's RNG in the same state as the pipeline did, and its
    crops rendered with torchvision's kernels equal the pipeline's output exactly."""
    transform = PIPELINES[name]()
    plan = plan_transform(transform)
    assert plan is not None
    rng = np.random.default_rng(1)
    for k in range(12):
        h, w = int(rng.integers(74, 260)), int(rng.integers(74, 260))
        pil = Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        torch.manual_seed(k)
        expected = transform(pil)
        after_pipeline = torch.get_rng_state()
        torch.manual_seed(k)
        draws = plan.draw(h, w)
        assert torch.equal(torch.get_rng_state(), after_pipeline)
        assert torch.equal(apply_draws(F.to_image(pil), draws, plan.mean, plan.std), expected)


def test_rrc_box_is_torchvisions_box() -> None:
    """The RandomResizedCrop region is the (top, left, h, w) torchvision's own get_params
    draws from the same seed (an independent call of its public API)."""
    plan = plan_transform(T.deepcluster_train(32, flip=False))
    assert plan is not None
    for seed in range(20):
        torch.manual_seed(seed)
        expected = v2.RandomResizedCrop.get_params(torch.empty(3, 90, 140), [0.08, 1.0],
                                                   [3 / 4, 4 / 3])
        torch.manual_seed(seed)
        assert plan.draw(90, 140).roi == tuple(expected)


def test_ten_crop_views_are_the_corners_centre_and_mirrors() -> None:
    plan = plan_transform(T.ten_crop(4, 6))
    assert plan is not None
    draws = plan.draw(6, 9)  # resized to 6 x 9, crops of 4 x 4
    corners = [(v.top, v.left, v.flip) for v in draws.views]
    assert draws.resize == (6, 9)
    assert corners[:5] == [(0, 0, False), (0, 5, False), (2, 0, False), (2, 5, False),
                           (1, 2, False)]
    # crops of the mirrored image at x are mirrors of the crops at 9 - x - 4
    assert corners[5:] == [(0, 5, True), (0, 0, True), (2, 5, True), (2, 0, True),
                           (1, 3, True)]


def test_inexpressible_pipelines_have_no_plan() -> None:
    """Geometry after normalisation, padding crops, a crop between two resamplings, three
    resamplings, non-bilinear resizes and foreign callables keep the PIL path (no
    approximation)."""
    assert plan_transform(T.voc_caffe_train(32)) is None
    assert plan_transform(v2.Compose([v2.ToImage(), v2.RandomCrop(8, padding=2),
                                      v2.ToDtype(torch.float32, scale=True)])) is None
    for steps in ([v2.Resize(20), v2.CenterCrop(18), v2.Resize((8, 8))],
                  [v2.Resize(20), v2.RandomResizedCrop(8)],
                  [v2.Resize(20), v2.Resize(12), v2.Resize((8, 8))]):
        assert plan_transform(v2.Compose([v2.ToImage(), *steps,
                                          v2.ToDtype(torch.float32, scale=True)])) is None
    nearest = v2.Resize(20, interpolation=v2.InterpolationMode.NEAREST)
    assert plan_transform(v2.Compose([v2.ToImage(), nearest,
                                      v2.ToDtype(torch.float32, scale=True)])) is None
    assert plan_transform(lambda img: img) is None


def test_a_crop_larger_than_the_image_is_unexpressible() -> None:
    plan = plan_transform(v2.Compose([v2.ToImage(), v2.CenterCrop(50),
                                      v2.ToDtype(torch.float32, scale=True)]))
    assert plan is not None
    with pytest.raises(Unexpressible):
        plan.draw(40, 80)  # torchvision pads here: the PIL path takes this image


def resize_int_reference(h: int, w: int, size: int) -> tuple[int, int]:
    """torchvision's Resize(int) rule written out: the short side becomes `size`, the long
    side `int(size * long / short)` (truncated), a square stays square."""
    if h <= w:
        return size, int(size * w / h)
    return int(size * h / w), size


def test_two_resizes_chain_with_torchvisions_rounding() -> None:
    """The squash's intermediate size is Resize(int)'s own output size, for portrait,
    landscape and square images of many sizes (including ones where the long side's
    truncation matters), and the final size is the square."""
    transform = squash_transform(64, 73, T.IMAGENET_MEAN, T.IMAGENET_STD)
    plan = plan_transform(transform)
    assert plan is not None
    first = v2.Resize(73, antialias=True)
    sizes = [(500, 333), (333, 500), (375, 500), (500, 375), (73, 73), (40, 41), (41, 40),
             (1000, 146), (146, 1000), (250, 250), (59, 97), (97, 59), (20, 300)]
    for h, w in sizes:
        draws = plan.draw(h, w)
        image = torch.zeros(3, h, w, dtype=torch.uint8)
        assert draws.roi == (0, 0, h, w) and draws.resize == (64, 64)
        assert draws.first == resize_int_reference(h, w, 73) == tuple(first(image).shape[1:])
        assert [(v.top, v.left, v.height, v.width, v.flip) for v in draws.views] == \
            [(0, 0, 64, 64, False)]
        pil = Image.fromarray(np.zeros((h, w, 3), dtype=np.uint8))
        assert tuple(transform(pil).shape) == (3, 64, 64)
    # one resize: no intermediate size, the Draws of every existing plan are unchanged
    assert plan_transform(T.center_crop(64, 73)).draw(90, 120).first is None
