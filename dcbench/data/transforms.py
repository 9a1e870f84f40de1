"""The named preprocessing pipelines of the thesis protocols (torchvision.transforms.v2).

Every pipeline takes a PIL RGB image and returns a normalised float32 tensor (C,H,W), or
(10,C,H,W) for `ten_crop`. Defaults are the published sizes (crop 224 after a 256 short-side
resize); the built-in 64 px data uses size 64 / resize 73.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torchvision.transforms import v2

from dcbench.core.registry import Registry
from dcbench.data.caffe_transform import CaffeTransformation

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


def _finish(mean: Sequence[float], std: Sequence[float]) -> list[nn.Module]:
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]


def to_float_tensor(img: Any) -> torch.Tensor:
    """PIL -> float32 tensor in [0, 1], no resizing or normalisation (the dataset default)."""
    return v2.functional.to_dtype(v2.functional.to_image(img), torch.float32, scale=True)


def plain(mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> v2.Compose:
    """Normalise only, keeping the image size (for already-sized data)."""
    return v2.Compose([v2.ToImage(), *_finish(mean, std)])


def center_crop(
    size: int = 224,
    resize: int = 256,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> v2.Compose:
    """Resize(short side) + CenterCrop: clustering features and fast evaluation features."""
    return v2.Compose(
        [v2.ToImage(), v2.Resize(resize, antialias=True), v2.CenterCrop(size), *_finish(mean, std)]
    )


def deepcluster_train(
    size: int = 224,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    flip: bool = True,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> v2.Compose:
    """DeepCluster training: RandomResizedCrop (torchvision defaults) + horizontal flip."""
    steps: list[nn.Module] = [
        v2.ToImage(),
        v2.RandomResizedCrop(size, scale=scale, ratio=ratio, antialias=True),
    ]
    if flip:
        steps.append(v2.RandomHorizontalFlip())
    return v2.Compose(steps + _finish(mean, std))


def linear_train(
    size: int = 224,
    resize: int = 256,
    flip: bool = True,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> v2.Compose:
    """Linear-probe training (eval_linear.py): Resize, CenterCrop(resize), RandomCrop, flip."""
    steps: list[nn.Module] = [
        v2.ToImage(),
        v2.Resize(resize, antialias=True),
        v2.CenterCrop(resize),
        v2.RandomCrop(size),
    ]
    if flip:
        steps.append(v2.RandomHorizontalFlip())
    return v2.Compose(steps + _finish(mean, std))


class StackCrops(nn.Module):
    """Stack the tuple of crops from TenCrop/FiveCrop into one (n,C,H,W) tensor."""

    def forward(self, crops: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.stack([torch.as_tensor(c) for c in crops])


def ten_crop(
    size: int = 224,
    resize: int = 256,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> v2.Compose:
    """Resize + TenCrop (4 corners, centre, and their flips) -> (10,C,H,W); average the scores."""
    return v2.Compose(
        [
            v2.ToImage(),
            v2.Resize(resize, antialias=True),
            v2.TenCrop(size),
            StackCrops(),
            *_finish(mean, std),
        ]
    )


def voc_train(
    size: int = 224,
    scale: tuple[float, float] = (0.1, 0.5),
    ratio: tuple[float, float] = (1.0, 1.0),
    flip: bool = True,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> v2.Compose:
    """VOC07 classification training (eval_voc_classif.py): square crops of 10-50% area."""
    steps: list[nn.Module] = [v2.ToImage()]
    if flip:
        steps.append(v2.RandomHorizontalFlip())
    steps.append(v2.RandomResizedCrop(size, scale=scale, ratio=ratio, antialias=True))
    return v2.Compose(steps + _finish(mean, std))


def voc_caffe_train(
    size: int = 224,
    scale: tuple[float, float] = (0.5, 2.0),
    flip: bool = True,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> v2.Compose:
    """VOC07 classification training and test passes of the Caffe `train_cls.py` (behind
    ECCV's `all` 73.7): Caffe's `TransformationLayer` with `min_scale`/`max_scale` = `scale`
    input pixels per output pixel, crop at the input size, mirror (`CaffeTransformation`)."""
    return v2.Compose([v2.ToImage(), *_finish(mean, std),
                       CaffeTransformation(size, scale, flip)])


PIPELINES: Registry[Callable[..., v2.Compose]] = Registry("transform pipeline")


def register_pipeline(name: str, factory: Callable[..., v2.Compose]) -> None:
    """Register a named pipeline factory; duplicate names are refused."""
    PIPELINES.register(name, factory)


for _name, _factory in (
    ("plain", plain),
    ("center_crop", center_crop),
    ("deepcluster_train", deepcluster_train),
    ("linear_train", linear_train),
    ("ten_crop", ten_crop),
    ("voc_train", voc_train),
    ("voc_caffe_train", voc_caffe_train),
):
    register_pipeline(_name, _factory)


def build(name: str, **kwargs: Any) -> v2.Compose:
    """Build a registered pipeline by name (UserError listing the valid names otherwise)."""
    return PIPELINES.get(name)(**kwargs)
