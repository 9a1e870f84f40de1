"""The frozen Sobel front-end of DeepCluster (grayscale average, then two 3x3 Sobel filters)."""

from __future__ import annotations

import torch
from torch import nn


def make_sobel() -> nn.Sequential:
    """`sobel.0`: 1x1 conv averaging the (normalised) RGB channels with weights 1/3;
    `sobel.1`: 3x3 conv with the Gx and Gy Sobel kernels. Frozen, bias 0, as in the
    official code, so its state_dict keys map 1:1 onto official checkpoints."""
    grayscale = nn.Conv2d(3, 1, kernel_size=1, stride=1, padding=0)
    sobel_filter = nn.Conv2d(1, 2, kernel_size=3, stride=1, padding=1)
    with torch.no_grad():
        grayscale.weight.fill_(1.0 / 3.0)
        grayscale.bias.zero_()
        gx = [[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]]
        gy = [[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]]
        sobel_filter.weight[0, 0] = torch.tensor(gx)
        sobel_filter.weight[1, 0] = torch.tensor(gy)
        sobel_filter.bias.zero_()
    sobel = nn.Sequential(grayscale, sobel_filter)
    for param in sobel.parameters():
        param.requires_grad = False
    return sobel
