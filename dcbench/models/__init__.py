"""Architectures (official DeepCluster AlexNet/VGG16, ResNet, third-party) and checkpoints."""

from dcbench.models.backbone import Backbone
from dcbench.models.registry import create_backbone, list_archs, register_arch

__all__ = ["Backbone", "create_backbone", "list_archs", "register_arch"]
