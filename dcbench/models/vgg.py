"""VGG16-BN exactly as the official DeepCluster code builds it (keys map 1:1 onto releases).

Classifier: Linear(25088, 4096), ReLU, Dropout, Linear(4096, 4096), ReLU (no leading or
trailing dropout, unlike torchvision). An AdaptiveAvgPool2d to 7x7 (identity at 224 px)
lets other input sizes through.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from dcbench.models.alexnet import SobelConvNet, init_official
from dcbench.models.sobel import make_sobel

VGG16_CFG: list[Any] = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
                        512, 512, 512, "M", 512, 512, 512, "M"]


def make_vgg_trunk(cfg: list[Any], in_channels: int, bn: bool = True) -> nn.Sequential:
    """3x3 conv (+BN) + ReLU per number, MaxPool(2, 2) per "M"."""
    layers: list[nn.Module] = []
    channels = in_channels
    for item in cfg:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        layers.append(nn.Conv2d(channels, item, kernel_size=3, padding=1))
        if bn:
            layers.append(nn.BatchNorm2d(item))
        layers.append(nn.ReLU(inplace=False))
        channels = item
    return nn.Sequential(*layers)


class VGG16(SobelConvNet):
    """VGG16-BN; taps conv1..conv5 are the ReLU after the last conv of each block."""

    EMBEDDING_TAP = "fc7"
    MIN_INPUT_SIZE = 32

    def __init__(self, config: dict[str, Any], generator: torch.Generator | None = None) -> None:
        config = {"input_size": 224, **config, "arch": "vgg16"}
        super().__init__(config)
        sobel = bool(self.config.get("sobel", True))
        self.config["sobel"] = sobel
        self.features = make_vgg_trunk(VGG16_CFG, 2 if sobel else 3, self.config.get("bn", True))
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(inplace=False),
            nn.Dropout(0.5),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=False),
        )
        init_official(self, generator)
        self.register_module("sobel", make_sobel() if sobel else None)
        relu_before_pool = [
            f"features.{i - 1}" for i, layer in enumerate(self.features)
            if isinstance(layer, nn.MaxPool2d)
        ]
        taps = {f"conv{i + 1}": node for i, node in enumerate(relu_before_pool)}
        self.finish_init({**taps, "fc6": "classifier.0", "fc7": "classifier.3"}, generator)


def build_vgg16(config: dict[str, Any], generator: torch.Generator | None = None) -> VGG16:
    """The official VGG16-BN (Sobel by default)."""
    return VGG16(config, generator=generator)
