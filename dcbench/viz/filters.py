"""First-layer filters (thesis Figure 5.2), composed with the Sobel front-end when there is one.

A Sobel model's conv1 sees two gradient maps, not RGB, so its raw (C, 2, k, k) weights mean
little to a person. Convolutions compose: conv1 after the 3x3 Sobel pair after the 1x1
grayscale average is one linear filter on the (normalised) RGB input, of size k + 2, equal in
the interior of the image to what the network computes (up to conv1's bias; Sobel's biases
are 0). That effective filter is what the thesis shows (grey, since every RGB channel gets
the same 1/3 weight).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dcbench.core.errors import UserError
from dcbench.viz.grid import minmax_per_item, short_name, tile_rows, upscale


def first_conv(model: nn.Module) -> nn.Conv2d:
    """The first convolution of the trunk (after the frozen Sobel layers, if any)."""
    features = getattr(model, "features", None)
    if isinstance(features, nn.Sequential) and isinstance(features[0], nn.Conv2d):
        return features[0]
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and not name.startswith("sobel."):
            return module
    raise UserError(f"{getattr(model, 'name', type(model).__name__)} has no convolution to show")


def compose_sobel(weight: torch.Tensor, sobel: nn.Sequential) -> torch.Tensor:
    """Effective RGB filters (C, 3, k+2, k+2) of conv1 `weight` (C, J, k, k) behind `sobel`.

    `sobel[1]` holds J 3x3 kernels s_j; stacking cross-correlations adds their offsets, so the
    grey kernel is E = sum_j full_convolution(w_j, s_j) (a true convolution: s flipped). Then
    the 1x1 grayscale conv `sobel[0]` spreads E over RGB with its per-channel weights.
    """
    gray, grad = sobel[0], sobel[1]
    s = grad.weight.detach().float()  # (J, 1, 3, 3)
    w = weight.detach().float()  # (C, J, k, k)
    if w.shape[1] != s.shape[0]:
        raise UserError(f"conv1 takes {w.shape[1]} channels but the Sobel layer gives {s.shape[0]}")
    kh, kw = s.shape[-2:]
    padded = F.pad(w, (kw - 1, kw - 1, kh - 1, kh - 1))
    flipped = torch.flip(s, dims=(-2, -1)).permute(1, 0, 2, 3)  # (1, J, 3, 3)
    grey = F.conv2d(padded, flipped)  # (C, 1, k+2, k+2), summed over the J gradient maps
    rgb = gray.weight.detach().float().reshape(1, -1, 1, 1)  # (1, 3, 1, 1)
    return grey * rgb


def effective_filters(model: nn.Module) -> torch.Tensor:
    """First-layer filters as RGB kernels (C, 3, kh, kw): Sobel-composed or the raw conv1."""
    weight = first_conv(model).weight.detach().float()
    sobel = getattr(model, "sobel", None)
    if sobel is not None:
        return compose_sobel(weight, sobel)
    if weight.shape[1] != 3:
        raise UserError(f"conv1 takes {weight.shape[1]} input channels; expected 3 (RGB) or Sobel")
    return weight


#: the narrowest filter grid drawn by default (pixels): a 5x5 or 7x7 kernel reads at a glance
MIN_WIDTH = 480


def filter_grid(
    filters: torch.Tensor, ncols: int | None = None, scale: int | None = None, padding: int = 1
) -> np.ndarray:
    """Tile (C, 3, kh, kw) filters, each min-max normalised on its own, -> uint8 (H, W, 3).

    Columns default to ceil(sqrt(C)); `scale` enlarges every pixel to scale x scale (None:
    the smallest scale, at least 4, that makes the grid `MIN_WIDTH` px wide).
    """
    if filters.dim() != 4 or filters.shape[1] != 3:
        raise ValueError(f"expected (C, 3, kh, kw) filters, got {tuple(filters.shape)}")
    if scale is not None and scale < 1:
        raise UserError(f"--scale must be >= 1, got {scale}")
    count = filters.shape[0]
    ncols = ncols or math.ceil(math.sqrt(count))
    if ncols < 1:
        raise UserError(f"--columns must be >= 1, got {ncols}")
    if scale is None:
        natural = min(ncols, count) * (int(filters.shape[-1]) + padding) + padding
        scale = max(4, math.ceil(MIN_WIDTH / natural))
    tiles = list(minmax_per_item(filters))
    rows = [tiles[i : i + ncols] for i in range(0, count, ncols)]
    return upscale(tile_rows(rows, padding=padding), scale)


def filters_image(model: nn.Module, ncols: int | None = None, scale: int | None = None
                  ) -> np.ndarray:
    """The thesis Figure 5.2 panel for `model`: its effective first-layer filters in a grid."""
    return filter_grid(effective_filters(model), ncols=ncols, scale=scale)


def filters_title(spec: str, filters: torch.Tensor, sobel: bool) -> list[str]:
    """The two title lines of a filters figure: the model's short name (no path), what is shown."""
    kind = "Sobel-composed" if sobel else "RGB"
    return [f"conv1 filters of {short_name(spec)}",
            f"{filters.shape[0]} {kind} filters of {filters.shape[-1]}x{filters.shape[-2]} px"]
