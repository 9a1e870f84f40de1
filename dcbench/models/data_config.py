"""A model's data config and the transforms it implies, under timm's names.

`resolve_data_config(model)` returns input_size (3, S, S), mean, std, interpolation and
crop_pct (from the model's `pretrained_cfg`); `create_transform(config, is_training)` builds
the torchvision v2 pipeline: eval = Resize(S / crop_pct) + CenterCrop(S); train =
RandomResizedCrop(S) + horizontal flip. Both take PIL images and return normalised tensors.
"""

from __future__ import annotations

from typing import Any

import torch
from torchvision.transforms import InterpolationMode, v2

from dcbench.core.errors import UserError
from dcbench.models.backbone import Backbone

_MODES = {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC,
          "nearest": InterpolationMode.NEAREST}


def resolve_data_config(model: Backbone | dict[str, Any]) -> dict[str, Any]:
    """The data config of a model (or a config dict to complete with the defaults)."""
    cfg = dict(model.pretrained_cfg if isinstance(model, Backbone) else model)
    size = cfg.get("input_size", (3, 224, 224))
    size = (3, int(size), int(size)) if isinstance(size, int) else tuple(int(s) for s in size)
    return {"input_size": size,
            "mean": tuple(cfg.get("mean", (0.485, 0.456, 0.406))),
            "std": tuple(cfg.get("std", (0.229, 0.224, 0.225))),
            "interpolation": str(cfg.get("interpolation", "bilinear")),
            "crop_pct": float(cfg.get("crop_pct", 0.875))}


def create_transform(config: Backbone | dict[str, Any], is_training: bool = False) -> v2.Compose:
    """The eval (resize + centre crop) or train (random resized crop + flip) pipeline."""
    cfg = resolve_data_config(config)
    side = cfg["input_size"][-1]
    mode = _MODES.get(cfg["interpolation"])
    if mode is None:
        raise UserError(f"unknown interpolation {cfg['interpolation']!r}; valid: "
                        + ", ".join(_MODES))
    if is_training:
        geometry = [v2.RandomResizedCrop(side, interpolation=mode, antialias=True),
                    v2.RandomHorizontalFlip()]
    else:
        resize = int(round(side / cfg["crop_pct"]))
        geometry = [v2.Resize(resize, interpolation=mode, antialias=True), v2.CenterCrop(side)]
    return v2.Compose([v2.ToImage(), *geometry, v2.ToDtype(torch.float32, scale=True),
                       v2.Normalize(list(cfg["mean"]), list(cfg["std"]))])
