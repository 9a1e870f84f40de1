"""VOC backbone surgery: parts of AlexNet/VGG-style nets, freezing rules, fc re-inits."""

from __future__ import annotations

import pytest
import torch

import dcbench
from dcbench.core.errors import UserError
from dcbench.protocols.voc.nets import VOCClassifierNet, backbone_parts, set_trainable


@pytest.fixture()
def model():
    return dcbench.load_model("arch:alexnet_small?sobel=1&seed=0")


def test_freezing_rules_and_eval_mode_trunk(model):
    net = VOCClassifierNet(backbone_parts(model, "voc07-cls"))
    convs = [m for m in net.features if isinstance(m, torch.nn.Conv2d)]
    bns = [m for m in net.features if isinstance(m, torch.nn.BatchNorm2d)]
    set_trainable(net, "fc6-8", train_bn_scales=False)
    assert not any(p.requires_grad for p in net.features.parameters())
    assert all(p.requires_grad for p in net.classifier.parameters())
    set_trainable(net, "fc6-8", train_bn_scales=True)
    assert all(bn.weight.requires_grad and bn.bias.requires_grad for bn in bns)
    assert not any(c.weight.requires_grad for c in convs)
    set_trainable(net, "all", train_bn_scales=False)
    assert all(c.weight.requires_grad for c in convs)
    assert not any(p.requires_grad for p in net.sobel.parameters())  # Sobel never trains
    net.train()
    assert not net.features.training and not any(bn.training for bn in bns)
    assert net.classifier.training  # dropout active


def test_backbone_parts_strip_torchvision_head_and_refuse_resnet():
    parts = backbone_parts(dcbench.load_model("torchvision:alexnet"), "voc07-cls")
    assert (parts.fc_dim, parts.grid, parts.conv_channels) == (4096, 6, 256)
    assert len(parts.linears()) == 2 and parts.sobel is None
    with pytest.raises(UserError, match="AlexNet/VGG-style"):
        backbone_parts(dcbench.load_model("arch:resnet18"), "voc07-cls")
