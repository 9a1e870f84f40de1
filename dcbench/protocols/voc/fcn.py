"""An FCN-32s-style segmentation network on our AlexNet/VGG trunks (Long et al., FCN).

Sobel (frozen) -> conv trunk with pool5 (stride 32 at AlexNet/VGG) -> fc6 and fc7 turned
into convolutions ("net surgery": fc6 becomes a grid x grid conv, fc7 a 1x1 conv, their
pretrained weights reshaped, dropouts kept) -> dropout -> a 1x1 score conv (21 classes,
zero-initialised as in FCN) -> bilinear upsampling to the input size. fc6 is padded by
grid // 2 so small maps keep a spatial extent (FCN instead padded conv1 by 100 and cropped).
"""

from __future__ import annotations

import torch
from torch import nn

from dcbench.protocols.voc.nets import BackboneParts, FrozenTrunkMixin


def convolutionalize(parts: BackboneParts) -> nn.Sequential:
    """fc6/fc7 (with their ReLUs and dropouts) as convolutions carrying the same weights."""
    layers: list[nn.Module] = []
    first = True
    for module in parts.classifier:
        if isinstance(module, nn.Linear):
            if first:
                conv = nn.Conv2d(parts.conv_channels, module.out_features, parts.grid,
                                 padding=parts.grid // 2)
                first = False
            else:
                conv = nn.Conv2d(module.in_features, module.out_features, 1)
            with torch.no_grad():
                conv.weight.copy_(module.weight.reshape(conv.weight.shape))
                conv.bias.copy_(module.bias)
            layers.append(conv)
        elif isinstance(module, nn.Dropout):
            layers.append(nn.Dropout(module.p))
        else:
            layers.append(module)
    return nn.Sequential(*layers)


class FCNNet(FrozenTrunkMixin):
    """FCN-32s on a backbone: per-pixel logits (N, num_classes, H, W) at the input size."""

    def __init__(self, parts: BackboneParts, num_classes: int = 21) -> None:
        super().__init__()
        self.sobel = parts.sobel or nn.Identity()
        self.features = parts.features
        self.classifier = convolutionalize(parts)
        self.dropout = nn.Dropout(0.5)  # FCN's drop7 before the score layer
        self.score = nn.Conv2d(parts.fc_dim, num_classes, 1)
        nn.init.zeros_(self.score.weight)
        nn.init.zeros_(self.score.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        y = self.score(self.dropout(self.classifier(self.features(self.sobel(x)))))
        return nn.functional.interpolate(y, size=size, mode="bilinear", align_corners=False)
