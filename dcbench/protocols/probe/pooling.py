"""Pooling tables that bring each frozen conv map to the ~9-10k dims of the linear probes.

Published tables (kernel, stride, padding of an `AvgPool2d`, count_include_pad as in
PyTorch's default, i.e. as in the official `eval_linear.py`):

| arch @224 | dialect   | conv1      | conv2      | conv3     | conv4     | conv5     |
|-----------|-----------|------------|------------|-----------|-----------|-----------|
| alexnet   | dc2018    | (6,6,3)    | (4,4,0)    | (3,3,1)   | (3,3,1)   | (2,2,0)   |
|           |           | 9600       | 9216       | 9600      | 9600      | 9216      |
| alexnet   | goyal2019 | (19,4,0)   | (12,3,0)   | (9,1,0)   | (9,1,0)   | (8,1,0)   |
|           |           | 9600       | 9216       | 9600      | 9600      | 9216      |
| resnet50/101 | both   | (10,10,4)  | (16,8,0)   | (13,5,0)  | (8,3,0)   | (6,1,0)   |
|           |           | 9216       | 9216       | 8192      | 9216      | 8192      |

The ResNet table is Goyal et al. 2019 / VISSL's; DeepCluster published none, so `dc2018` uses
it too. VGG16 has no published table: dcbench uses adaptive average pooling to the grids
12/8/6/4/4 (64x12x12 = 9216, 128x8x8 = 8192, 256x6x6 = 9216, 512x4x4 = 8192, 512x4x4 = 8192),
the same 8-10k range as the ResNet table.

Any other architecture or input size (e.g. `alexnet_small` at 64 px) uses the documented
**fallback rule**: adaptive average pooling to the square grid s that makes C*s*s closest to
9600, with 1 <= s <= min(H, W) (a map smaller than the target is kept whole). fc taps
(N, D) are used as they are.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from dcbench.models.backbone import Backbone

TARGET_DIM = 9600
TABLE_INPUT_SIZE = 224

_ALEXNET_DC2018 = {"conv1": (6, 6, 3), "conv2": (4, 4, 0), "conv3": (3, 3, 1),
                   "conv4": (3, 3, 1), "conv5": (2, 2, 0)}
_ALEXNET_GOYAL = {"conv1": (19, 4, 0), "conv2": (12, 3, 0), "conv3": (9, 1, 0),
                  "conv4": (9, 1, 0), "conv5": (8, 1, 0)}
_RESNET_GOYAL = {"conv1": (10, 10, 4), "conv2": (16, 8, 0), "conv3": (13, 5, 0),
                 "conv4": (8, 3, 0), "conv5": (6, 1, 0)}
_VGG_GRIDS = {"conv1": 12, "conv2": 8, "conv3": 6, "conv4": 4, "conv5": 4}

# (arch, pooling table name) -> {layer: (kernel, stride, padding)}
PUBLISHED_TABLES: dict[tuple[str, str], dict[str, tuple[int, int, int]]] = {
    ("alexnet", "dc2018"): _ALEXNET_DC2018,
    ("alexnet", "goyal2019"): _ALEXNET_GOYAL,
    ("resnet50", "dc2018"): _RESNET_GOYAL,
    ("resnet50", "goyal2019"): _RESNET_GOYAL,
    ("resnet101", "dc2018"): _RESNET_GOYAL,
    ("resnet101", "goyal2019"): _RESNET_GOYAL,
}
POOLING_TABLES = ("dc2018", "goyal2019")


@dataclasses.dataclass(frozen=True)
class PoolSpec:
    """How one tap is pooled: `avg` (kernel, stride, padding), `adaptive` (grid) or `none`."""

    kind: str
    kernel: int = 0
    stride: int = 0
    padding: int = 0
    grid: int = 0

    def describe(self) -> str:
        """A stable text form, used in feature-cache keys and run logs."""
        if self.kind == "avg":
            return f"avg(k={self.kernel},s={self.stride},p={self.padding})"
        if self.kind == "adaptive":
            return f"adaptive({self.grid}x{self.grid})"
        return "none"

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Pooled shape for an input of `shape` = (C, H, W) or (D,), computed by hand."""
        if len(shape) == 1 or self.kind == "none":
            return (int(math.prod(shape)),)
        channels, height, width = shape
        if self.kind == "adaptive":
            return (channels, self.grid, self.grid)
        out_h = (height + 2 * self.padding - self.kernel) // self.stride + 1
        out_w = (width + 2 * self.padding - self.kernel) // self.stride + 1
        return (channels, out_h, out_w)

    def output_dim(self, shape: tuple[int, ...]) -> int:
        """Flattened output size for an input of `shape` = (C, H, W) or (D,)."""
        return int(math.prod(self.output_shape(shape)))


def fallback_grid(channels: int, height: int, width: int, target: int = TARGET_DIM) -> int:
    """The grid s in [1, min(H, W)] minimising |C*s*s - target| (ties: the smaller s)."""
    best = 1
    for s in range(1, min(height, width) + 1):
        if abs(channels * s * s - target) < abs(channels * best * best - target):
            best = s
    return best


def pool_spec(
    arch: str, layer: str, shape: tuple[int, ...], input_size: int, table: str = "dc2018"
) -> PoolSpec:
    """The pooling for `layer` of `arch`, given its map shape (C, H, W) at `input_size`."""
    if table not in POOLING_TABLES:
        raise ValueError(f"pooling table {table!r} is not one of {POOLING_TABLES}")
    if len(shape) == 1:
        return PoolSpec("none")
    published = PUBLISHED_TABLES.get((arch, table), {})
    if layer in published and input_size == TABLE_INPUT_SIZE:
        kernel, stride, padding = published[layer]
        return PoolSpec("avg", kernel, stride, padding)
    if arch == "vgg16" and layer in _VGG_GRIDS and input_size == TABLE_INPUT_SIZE:
        return PoolSpec("adaptive", grid=_VGG_GRIDS[layer])
    channels, height, width = shape
    return PoolSpec("adaptive", grid=fallback_grid(channels, height, width))


def pool_features(x: torch.Tensor, spec: PoolSpec) -> torch.Tensor:
    """Pool a (N, C, H, W) map (or pass a (N, D) fc output) and flatten to (N, D)."""
    if x.dim() == 2 or spec.kind == "none":
        return x.flatten(1)
    if spec.kind == "adaptive":
        return F.adaptive_avg_pool2d(x, spec.grid).flatten(1)
    return F.avg_pool2d(x, spec.kernel, spec.stride, spec.padding).flatten(1)


def model_pool_specs(model: Backbone, layers: list[str], input_size: int, table: str
                     ) -> dict[str, PoolSpec]:
    """Pool specs for each requested tap of a Backbone at `input_size` (one dummy forward)."""
    shapes = model.feature_shapes(layers, input_size)
    arch = str(model.config.get("arch", ""))
    wrapped = arch.split(":", 1)[-1].split("@", 1)[0]
    if ":" in arch and wrapped in ("resnet50", "resnet101"):
        arch = wrapped  # torchvision/timm ResNets have exactly our ResNet's taps and shapes
    return {layer: pool_spec(arch, layer, shapes[layer], input_size, table) for layer in layers}
