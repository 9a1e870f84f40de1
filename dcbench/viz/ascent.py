"""Feature visualisation by optimisation (thesis Section 5.3, official visu/gradient_ascent.py).

Start from a seeded noise image and repeatedly step the input along the normalised gradient
of an objective on one channel of a tap, with an L2 penalty on the input and a Gaussian blur
every `blur_every` steps (Yosinski et al. 2015, as the thesis says).

Objective (`objective`):
- `ce` (default, the official one): log-softmax of the target channel among the layer's
  spatial-mean activations, i.e. -CrossEntropy(means, target). It raises the target *and*
  lowers the other channels, so the image shows what is specific to that channel rather than
  a generic high-contrast texture that fires every channel; the normalised-gradient step keeps
  the steps sizeable once the softmax saturates.
- `mean`: the target channel's spatial-mean activation alone (plain activation maximisation).

Both act on post-ReLU activations; when the target channel is dead on the current image (all
zero, so no gradient), its pre-ReLU map is used instead, as the official script falls back
to the conv output. Differences from the official script, on purpose: the image is optimised
in the model's normalised input space (the official one fed unnormalised pixels), and `lr` is
the RMS change per input value per step, so one default works at 64 px and at 224 px (the
official lr 3 at 224 px is 3 / sqrt(3*224*224) = 0.0077 per value of a [0, 1] image).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms.v2 import functional as TF

from dcbench.core.errors import UserError
from dcbench.models.backbone import Backbone
from dcbench.viz.ascent_config import AscentConfig
from dcbench.viz.grid import tile_rows, upscale


@dataclass
class AscentResult:
    """The optimised input (normalised, (3, H, W)) and the target's activation along the way."""

    image: torch.Tensor
    layer: str
    channel: int
    start_activation: float  # spatial-mean post-ReLU activation on the initial noise
    final_activation: float  # ... on the returned image
    history: list[float] = field(default_factory=list)  # per iteration, before the step


def channel_means(tap: torch.Tensor) -> torch.Tensor:
    """(1, C, H, W) -> (C,) spatial means; fc taps (1, D) -> (D,)."""
    return tap.mean(dim=(2, 3))[0] if tap.dim() == 4 else tap[0]


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur on the spatial axes with a kernel of +-3 sigma (odd, at least 3)."""
    if sigma <= 0:
        return x
    kernel = max(3, 2 * math.ceil(3 * sigma) + 1)
    return TF.gaussian_blur(x, [kernel, kernel], [sigma, sigma])


def _relu_input_hook(model: Backbone, layer: str):
    """Capture the input of the tap's ReLU module (its pre-activation), when it has one."""
    try:
        module = model.get_submodule(model.TAP_NODES[layer])
    except AttributeError:
        return None, {}
    if not isinstance(module, nn.ReLU):
        return None, {}
    seen: dict[str, torch.Tensor] = {}
    handle = module.register_forward_hook(lambda _m, inp, _out: seen.__setitem__("pre", inp[0]))
    return handle, seen


def initial_image(model: Backbone, size: int, noise_std: float, seed: int) -> torch.Tensor:
    """Seeded mid-grey noise (0.5 + noise_std * N(0, 1) per pixel), normalised for `model`."""
    gen = torch.Generator().manual_seed(int(seed))
    pixels = 0.5 + noise_std * torch.randn(1, 3, size, size, generator=gen)
    mean = torch.tensor(model.config["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(model.config["std"]).view(1, 3, 1, 1)
    return (pixels - mean) / std


def gradient_ascent(
    model: Backbone, layer: str, channel: int, config: AscentConfig | None = None,
    progress: Callable[[int], object] | None = None,
) -> AscentResult:
    """Optimise an input so that `channel` of `layer` fires (see the module docstring)."""
    cfg = config or AscentConfig()
    cfg.validate()
    model.check_layers([layer])
    count = model.tap_channels(layer)
    if not 0 <= channel < count:
        raise UserError(f"channel {channel} out of range: {layer} has channels 0..{count - 1}")
    size = int(cfg.size or model.config["input_size"])
    model.eval()
    param = next(model.parameters())
    x = initial_image(model, size, cfg.noise_std, cfg.seed).to(param.device, param.dtype)
    step_scale = cfg.lr * math.sqrt(x.numel())
    handle, seen = _relu_input_hook(model, layer)
    history: list[float] = []
    try:
        for it in range(cfg.iters):
            x.requires_grad_(True)
            means = channel_means(model.forward_features(x, [layer])[layer])
            history.append(float(means[channel].detach()))
            target = means[channel]
            if float(target.detach()) == 0.0 and "pre" in seen:
                target = channel_means(seen["pre"])[channel]
            if cfg.objective == "ce":
                logits = torch.cat([means[:channel], target.view(1), means[channel + 1 :]])
                score = F.log_softmax(logits, dim=0)[channel]
            else:
                score = target
            objective = score - cfg.weight_decay * x.pow(2).sum()
            (grad,) = torch.autograd.grad(objective, x)
            with torch.no_grad():
                x = x + step_scale * grad / grad.norm().clamp_min(1e-12)
                if (it + 1) % cfg.blur_every == 0:
                    x = blur(x, cfg.sigma)
            if progress is not None:
                progress(1)
        with torch.no_grad():
            final = float(channel_means(model.forward_features(x, [layer])[layer])[channel])
    finally:
        if handle is not None:
            handle.remove()
    return AscentResult(x.detach()[0].cpu(), layer, channel, history[0], final, history)


def deprocess(image: torch.Tensor, mean: list[float], std: list[float]) -> torch.Tensor:
    """The official display mapping: back to pixels, centre, scale to std 0.1, +0.5, clip.

    Contrast is stretched the same way for every image, so faint and strong patterns are
    both visible; (3, H, W) -> (3, H, W) in [0, 1].
    """
    m = torch.tensor(mean).view(3, 1, 1)
    s = torch.tensor(std).view(3, 1, 1)
    pixels = image.float() * s + m
    centred = pixels - pixels.mean()
    return (centred / (centred.std() + 1e-5) * 0.1 + 0.5).clamp(0.0, 1.0)


def ascent_figure(
    model: Backbone,
    layer: str,
    channels: list[int],
    config: AscentConfig | None = None,
    columns: int | None = None,
    scale: int = 1,
    progress: Callable[[int], object] | None = None,
) -> tuple[np.ndarray, list[AscentResult]]:
    """Optimise every channel with the same settings and tile the deprocessed images.

    Returns the uint8 (H, W, 3) figure (channels left to right, `columns` per row) and the
    per-channel results (with start/final activations).
    """
    results = [gradient_ascent(model, layer, c, config, progress) for c in channels]
    tiles = [deprocess(r.image, model.config["mean"], model.config["std"]) for r in results]
    ncols = columns or len(tiles)
    rows = [tiles[i : i + ncols] for i in range(0, len(tiles), ncols)]
    return upscale(tile_rows(rows, padding=2), scale), results
