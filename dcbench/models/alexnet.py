"""AlexNet-BN exactly as the official DeepCluster code builds it, plus a small 64-px variant.

Layer order, BN after every conv (conv bias kept), classifier layout and init follow
`deepcluster/models/alexnet.py` so official state_dict keys map 1:1 once `.module` is
removed. One deliberate difference: an AdaptiveAvgPool2d to the native 6x6 grid before the
classifier, which is the identity at 224 px and lets other input sizes through.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from dcbench.models.backbone import Backbone
from dcbench.models.sobel import make_sobel

# (out_channels, kernel, stride, padding) per conv; "M" = MaxPool(3, 2).
ALEXNET_CFG: list[Any] = [(96, 11, 4, 2), "M", (256, 5, 1, 2), "M", (384, 3, 1, 1),
                          (384, 3, 1, 1), (256, 3, 1, 1), "M"]
# The 64-px model of the built-in data: same five-conv topology, 1/3 to 1/4 the width.
ALEXNET_SMALL_CFG: list[Any] = [(32, 5, 2, 2), "M", (64, 5, 1, 2), "M", (96, 3, 1, 1),
                                (96, 3, 1, 1), (64, 3, 1, 1), "M"]


def make_conv_trunk(cfg: list[Any], in_channels: int, bn: bool = True) -> nn.Sequential:
    """Conv (+BN) + ReLU per tuple, MaxPool(3, 2) per "M", in the official module order."""
    layers: list[nn.Module] = []
    channels = in_channels
    for item in cfg:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=3, stride=2))
            continue
        out, kernel, stride, pad = item
        layers.append(nn.Conv2d(channels, out, kernel_size=kernel, stride=stride, padding=pad))
        if bn:
            layers.append(nn.BatchNorm2d(out))
        layers.append(nn.ReLU(inplace=False))
        channels = out
    return nn.Sequential(*layers)


def init_official(
    module: nn.Module, generator: torch.Generator | None = None, linear_std: float = 0.01
) -> None:
    """The official `_initialize_weights`: He fan-out normal convs, BN (1, 0), Linear N(0, 0.01)."""
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, nn.Conv2d):
                fan_out = layer.kernel_size[0] * layer.kernel_size[1] * layer.out_channels
                layer.weight.normal_(0.0, math.sqrt(2.0 / fan_out), generator=generator)
                if layer.bias is not None:
                    layer.bias.zero_()
            elif isinstance(layer, nn.BatchNorm2d):
                layer.weight.fill_(1.0)
                layer.bias.zero_()
            elif isinstance(layer, nn.Linear):
                layer.weight.normal_(0.0, linear_std, generator=generator)
                layer.bias.zero_()


def _conv_relu_nodes(features: nn.Sequential) -> list[str]:
    """FX node names of the ReLU that closes each conv (the conv taps)."""
    names = []
    for index, layer in enumerate(features):
        if isinstance(layer, nn.ReLU):
            names.append(f"features.{index}")
    return names


class SobelConvNet(Backbone):
    """The official DeepCluster layout: `sobel` -> `features` -> pool -> `classifier` (fc6, fc7)."""

    def trunk_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Sobel -> convs -> pool to the native grid -> flatten -> fc6/fc7 (with final ReLU)."""
        if self.sobel is not None:
            x = self.sobel(x)
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


class AlexNet(SobelConvNet):
    """AlexNet-BN (official DeepCluster layout): `sobel`, `features`, `classifier`, `top_layer`."""

    EMBEDDING_TAP = "fc7"
    MIN_INPUT_SIZE = 63

    def __init__(
        self,
        config: dict[str, Any],
        cfg: list[Any] | None = None,
        fc_dim: int = 4096,
        grid: int = 6,
        generator: torch.Generator | None = None,
        linear_std: float = 0.01,
    ) -> None:
        super().__init__(config)
        cfg = cfg or ALEXNET_CFG
        sobel = bool(self.config.get("sobel", True))
        self.config["sobel"] = sobel
        self.features = make_conv_trunk(cfg, 2 if sobel else 3, bn=self.config.get("bn", True))
        last = [c for c in cfg if c != "M"][-1][0]
        self.avgpool = nn.AdaptiveAvgPool2d((grid, grid))
        self.classifier = nn.Sequential(
            nn.Dropout(0.5),
            nn.Linear(last * grid * grid, fc_dim),
            nn.ReLU(inplace=False),
            nn.Dropout(0.5),
            nn.Linear(fc_dim, fc_dim),
            nn.ReLU(inplace=False),
        )
        init_official(self, generator, linear_std)
        # Built after init, as in the official code, so Sobel keeps its fixed kernels.
        self.register_module("sobel", make_sobel() if sobel else None)
        relus = _conv_relu_nodes(self.features)
        taps = {f"conv{i + 1}": node for i, node in enumerate(relus)}
        self.finish_init({**taps, "fc6": "classifier.1", "fc7": "classifier.4"}, generator)


def build_alexnet(config: dict[str, Any], generator: torch.Generator | None = None) -> AlexNet:
    """The official 224-px AlexNet-BN (58.3M trunk parameters)."""
    config = {"input_size": 224, **config, "arch": "alexnet"}
    return AlexNet(config, ALEXNET_CFG, fc_dim=4096, grid=6, generator=generator)


def build_alexnet_small(
    config: dict[str, Any], generator: torch.Generator | None = None
) -> AlexNet:
    """A 64-px, ~1M-parameter AlexNet-BN for the built-in data and 2-core CI runs."""
    config = {"input_size": 64, **config, "arch": "alexnet_small"}
    # The official N(0, 0.01) FC init is tuned for fan-ins of 9216/4096. With fan-ins 16x
    # smaller it leaves fc7 ~25x weaker and the head learns nothing for hundreds of steps;
    # 0.04 = 0.01 * sqrt(16) gives fc6/fc7 the activation scale of the official AlexNet.
    small = AlexNet(config, ALEXNET_SMALL_CFG, fc_dim=256, grid=3, generator=generator,
                    linear_std=0.04)
    small.MIN_INPUT_SIZE = 32
    return small
