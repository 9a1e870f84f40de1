"""Architectures (official DeepCluster AlexNet/VGG16, ResNet, third-party) and checkpoints."""

from dcbench.models.archs import create_backbone, list_archs, register_arch
from dcbench.models.backbone import Backbone

__all__ = ["Backbone", "create_backbone", "list_archs", "register_arch"]
