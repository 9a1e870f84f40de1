"""Architectures (official DeepCluster AlexNet/VGG16, ResNet, third-party) and checkpoints.

The names below resolve on first use (PEP 562), so a light module of this package (such as
`converter_names`, read by the `hub` argument parser) can be imported without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dcbench.models.archs import create_backbone, list_archs, register_arch
    from dcbench.models.backbone import Backbone

_LAZY = {"create_backbone": "dcbench.models.archs", "list_archs": "dcbench.models.archs",
         "register_arch": "dcbench.models.archs", "Backbone": "dcbench.models.backbone"}

__all__ = ["Backbone", "create_backbone", "list_archs", "register_arch"]


def __getattr__(name: str) -> Any:
    """Import the module behind a package name on first use and cache the attribute."""
    if name not in _LAZY:
        raise AttributeError(f"module 'dcbench.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
