"""ResNet-50/101 (torchvision's implementation) with an optional Sobel front-end (thesis 4.5).

With Sobel the stem conv takes the 2 Sobel channels. Taps: `conv1` (stem ReLU), `conv2`..
`conv5` (layer1..layer4 outputs), `pool` (global average pool, the clustering embedding).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchvision.models import resnet

from dcbench.models.alexnet import init_official
from dcbench.models.backbone import Backbone
from dcbench.models.sobel import make_sobel

RESNET_BUILDERS = {"resnet18": resnet.resnet18, "resnet50": resnet.resnet50,
                   "resnet101": resnet.resnet101}


class ResNet(Backbone):
    """A torchvision ResNet body (`body.*` keys) with optional Sobel and a DeepCluster head."""

    EMBEDDING_TAP = "pool"
    MIN_INPUT_SIZE = 32
    TAP_NODES = {"conv1": "body.relu", "conv2": "body.layer1", "conv3": "body.layer2",
                 "conv4": "body.layer3", "conv5": "body.layer4", "pool": "flatten"}

    def __init__(self, config: dict[str, Any], generator: torch.Generator | None = None) -> None:
        arch = config.get("arch", "resnet50")
        super().__init__({"input_size": 224, **config, "arch": arch})
        sobel = bool(self.config.get("sobel", False))
        self.config["sobel"] = sobel
        body = RESNET_BUILDERS[arch](weights=None)
        if sobel:
            body.conv1 = nn.Conv2d(2, 64, kernel_size=7, stride=2, padding=3, bias=False)
        body.fc = nn.Identity()
        self.body = body
        if generator is not None:
            # torchvision draws its init from the global RNG; redraw convs from ours.
            for module in self.body.modules():
                if isinstance(module, nn.Conv2d):
                    init_official(module, generator)
        self.register_module("sobel", make_sobel() if sobel else None)
        self.finish_init(self.TAP_NODES, generator)

    def trunk_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Sobel -> torchvision ResNet up to the global pool -> flatten (N, 2048)."""
        if self.sobel is not None:
            x = self.sobel(x)
        b = self.body
        x = b.maxpool(b.relu(b.bn1(b.conv1(x))))
        x = b.layer4(b.layer3(b.layer2(b.layer1(x))))
        return torch.flatten(b.avgpool(x), 1)


def build_resnet(config: dict[str, Any], generator: torch.Generator | None = None) -> ResNet:
    """ResNet-18/50/101, RGB by default, Sobel on request."""
    return ResNet(config, generator=generator)
