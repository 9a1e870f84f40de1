"""Architectures (official DeepCluster AlexNet/VGG16, ResNet, third-party) and checkpoints.

The names below resolve on first use (PEP 562), so a light module of this package (such as
`converter_names`, read by the `hub` argument parser) can be imported without torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dcbench.core.lazy import lazy_exports

if TYPE_CHECKING:
    from dcbench.models.archs import create_backbone, list_archs, register_arch
    from dcbench.models.backbone import Backbone

_LAZY = {"create_backbone": "dcbench.models.archs", "list_archs": "dcbench.models.archs",
         "register_arch": "dcbench.models.archs", "Backbone": "dcbench.models.backbone"}

__all__ = ["Backbone", "create_backbone", "list_archs", "register_arch"]

__getattr__, __dir__ = lazy_exports("dcbench.models", globals(), _LAZY)
