"""Architecture registry: name -> builder(config, generator) -> Backbone. Duplicates refused."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any

import torch

from dcbench.core.errors import UserError, did_you_mean
from dcbench.models.alexnet import build_alexnet, build_alexnet_small
from dcbench.models.backbone import Backbone
from dcbench.models.config_schema import check_model_config, check_seed
from dcbench.models.resnet import build_resnet
from dcbench.models.vgg import build_vgg16

Builder = Callable[[dict[str, Any], "torch.Generator | None"], Backbone]
_ARCHS: dict[str, Builder] = {}


def register_arch(name: str) -> Callable[[Builder], Builder]:
    """Register an architecture builder under `name`; a second registration is an error."""

    def decorate(builder: Builder) -> Builder:
        if name in _ARCHS:
            raise ValueError(f"architecture {name!r} is already registered")
        _ARCHS[name] = builder
        return builder

    return decorate


def list_archs(pattern: str = "*") -> list[str]:
    """Registered architecture names matching a glob."""
    return sorted(n for n in _ARCHS if fnmatch.fnmatch(n, pattern))


def create_backbone(config: dict[str, Any], seed: int | None = None) -> Backbone:
    """Build `config['arch']` with the official random init (seeded when `seed` is given)."""
    check_model_config(config)
    if seed is not None:
        seed = check_seed(seed)
    arch = config.get("arch")
    if arch not in _ARCHS:
        raise UserError(f"unknown architecture {arch!r}; " + did_you_mean(str(arch), list(_ARCHS)))
    generator = torch.Generator().manual_seed(int(seed)) if seed is not None else None
    if seed is not None:
        # Modules that cannot take a generator (torchvision defaults) draw from this.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            return _ARCHS[arch](dict(config), generator)
    return _ARCHS[arch](dict(config), generator)


def _register_builtin() -> None:

    register_arch("alexnet")(build_alexnet)
    register_arch("alexnet_small")(build_alexnet_small)
    register_arch("vgg16")(build_vgg16)
    for depth in ("resnet18", "resnet50", "resnet101"):
        register_arch(depth)(lambda cfg, gen, _d=depth: build_resnet({**cfg, "arch": _d}, gen))


_register_builtin()
