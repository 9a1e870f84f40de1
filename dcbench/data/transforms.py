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


class ScaleJitterCrop(nn.Module):
    """Caffe-style scale jitter + square crop at the network's input size + mirror, on a
    normalised (C, H, W) float tensor (what philkr/voc-classification `train_cls.py` asks
    its data layer for: `min_scale` 0.5, `max_scale` 2.0, `crop_size` = input size,
    `mirror`).

    The rule, as written here (the transforming Caffe layer itself is not public): the
    whole image is resized by s ~ U(scale) to (round(H s), round(W s)) (bilinear, no
    antialiasing, as OpenCV's INTER_LINEAR); a `size` x `size` window is placed at a uniform
    integer offset in [min(0, L - size), max(0, L - size)] along each side of length L, so
    a side shorter than the crop lands at a random place in it with zeros (the mean colour
    after normalisation) around it; the window is mirrored with probability 1/2. Draws come
    from torch's global RNG (seeded per item by the protocols).
    """

    def __init__(self, size: int, scale: tuple[float, float] = (0.5, 2.0),
                 flip: bool = True) -> None:
        super().__init__()
        self.size, self.scale, self.flip = int(size), (float(scale[0]), float(scale[1])), flip

    def make_params(self, height: int, width: int) -> tuple[float, int, int, bool]:
        """(scale factor, top, left, mirror) for an H x W image."""
        low, high = self.scale
        factor = low + (high - low) * float(torch.rand((), dtype=torch.float64))
        offsets = []
        for length in (max(1, round(height * factor)), max(1, round(width * factor))):
            slack = length - self.size
            offsets.append(int(torch.randint(min(0, slack), max(0, slack) + 1, ())))
        mirror = self.flip and bool(torch.rand(()) < 0.5)
        return factor, offsets[0], offsets[1], mirror

    def apply(self, image: torch.Tensor, params: tuple[float, int, int, bool]) -> torch.Tensor:
        """The crop of `image` (C, H, W float) for given `make_params` draws."""
        factor, top, left, mirror = params
        height, width = image.shape[-2:]
        new_h, new_w = max(1, round(height * factor)), max(1, round(width * factor))
        resized = nn.functional.interpolate(image[None], size=(new_h, new_w), mode="bilinear",
                                            align_corners=False, antialias=False)[0]
        out = resized.new_zeros((image.shape[0], self.size, self.size))
        y0, x0 = max(0, top), max(0, left)
        y1, x1 = min(new_h, top + self.size), min(new_w, left + self.size)
        out[:, y0 - top:y1 - top, x0 - left:x1 - left] = resized[:, y0:y1, x0:x1]
        return out.flip(-1) if mirror else out

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.apply(image, self.make_params(*image.shape[-2:]))


def voc_caffe_train(
    size: int = 224,
    scale: tuple[float, float] = (0.5, 2.0),
    flip: bool = True,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> v2.Compose:
    """VOC07 classification training of the Caffe `train_cls.py` (behind ECCV's `all` 73.7):
    scale jitter 0.5-2.0, crop at the input size, mirror (`ScaleJitterCrop`)."""
    return v2.Compose([v2.ToImage(), *_finish(mean, std), ScaleJitterCrop(size, scale, flip)])


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
