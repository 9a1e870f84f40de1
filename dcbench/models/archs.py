"""Architecture registry: name -> builder(config, generator) -> Backbone. Duplicates refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from dcbench.core.registry import Registry
from dcbench.models.alexnet import build_alexnet, build_alexnet_small
from dcbench.models.backbone import Backbone
from dcbench.models.config_schema import check_model_config, check_seed
from dcbench.models.resnet import build_resnet
from dcbench.models.vgg import build_vgg16

Builder = Callable[[dict[str, Any], "torch.Generator | None"], Backbone]
ARCHS: Registry[Builder] = Registry("architecture")


def register_arch(name: str) -> Callable[[Builder], Builder]:
    """Register an architecture builder under `name`; a second registration is an error."""
    return ARCHS.decorator(name)


def list_archs(pattern: str = "*") -> list[str]:
    """Registered architecture names matching a glob."""
    return ARCHS.names(pattern)


def create_backbone(config: dict[str, Any], seed: int | None = None) -> Backbone:
    """Build `config['arch']` with the official random init (seeded when `seed` is given)."""
    check_model_config(config)
    if seed is not None:
        seed = check_seed(seed)
    builder = ARCHS.get(config.get("arch"))
    generator = torch.Generator().manual_seed(int(seed)) if seed is not None else None
    if seed is not None:
        # Modules that cannot take a generator (torchvision defaults) draw from this.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            return builder(dict(config), generator)
    return builder(dict(config), generator)


ARCHS.register("alexnet", build_alexnet)
ARCHS.register("alexnet_small", build_alexnet_small)
ARCHS.register("vgg16", build_vgg16)
for _depth in ("resnet18", "resnet50", "resnet101"):
    ARCHS.register(_depth, lambda cfg, gen, _d=_depth: build_resnet({**cfg, "arch": _d}, gen))
