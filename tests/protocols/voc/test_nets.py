"""VOC backbone surgery: parts of AlexNet/VGG-style nets, freezing rules, fc re-inits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import dcbench
from dcbench.core.errors import UserError
from dcbench.protocols.voc.nets import (
    VOCClassifierNet,
    backbone_parts,
    set_trainable,
    use_caffe_batch_stats,
)


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
    parts = backbone_parts(dcbench.load_model("torchvision:alexnet@random"), "voc07-cls")
    assert (parts.fc_dim, parts.grid, parts.conv_channels) == (4096, 6, 256)
    assert len(parts.linears()) == 2 and parts.sobel is None
    with pytest.raises(UserError, match="AlexNet/VGG-style"):
        backbone_parts(dcbench.load_model("arch:resnet18"), "voc07-cls")


def caffe_batch_norm_port(x: np.ndarray, mean_acc: np.ndarray, var_acc: np.ndarray, s: float,
                          eps: float = 1e-5, fraction: float = 0.999):
    """Caffe BatchNormLayer::Forward_cpu in TRAIN (use_global_stats false), float64:
    normalise with the batch mean and biased variance, then blobs[2] = s * fraction + 1,
    blobs[0] = fraction * blobs[0] + mean, blobs[1] = fraction * blobs[1] + m/(m-1) var."""
    m = x.shape[0] * x.shape[2] * x.shape[3]
    mean = x.mean(axis=(0, 2, 3))
    var = ((x - mean[None, :, None, None]) ** 2).mean(axis=(0, 2, 3))
    out = (x - mean[None, :, None, None]) / np.sqrt(var + eps)[None, :, None, None]
    return (out, fraction * mean_acc + mean, fraction * var_acc + var * m / (m - 1),
            fraction * s + 1)


def test_caffe_batch_stats_follow_caffe_batchnorm(model):
    """`bn_stats=batch`: the trunk's BN normalises with batch statistics in training and
    accumulates Caffe's global statistics (the converter's stored stats with s = 1)."""
    net = VOCClassifierNet(backbone_parts(model, "voc07-cls"))
    bn = next(m for m in net.features if isinstance(m, torch.nn.BatchNorm2d))
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.fill_(1.0)
        bn.bias.zero_()
    mean_acc, var_acc, s = bn.running_mean.double().numpy(), bn.running_var.double().numpy(), 1.0
    use_caffe_batch_stats(net)
    net.train()
    assert bn.training and not net.sobel.training
    seen = []
    bn.register_forward_hook(lambda mod, inp, out: seen.append((inp[0], out)))
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        net(torch.randn(4, 3, 64, 64, generator=generator))
        x, out = seen[-1]
        want, mean_acc, var_acc, s = caffe_batch_norm_port(x.detach().double().numpy(),
                                                           mean_acc, var_acc, s)
        np.testing.assert_allclose(out.detach().double().numpy(), want, atol=2e-4)
    np.testing.assert_allclose(bn.running_mean.double().numpy(), mean_acc / s, rtol=1e-4,
                               atol=1e-6)
    np.testing.assert_allclose(bn.running_var.double().numpy(), var_acc / s, rtol=1e-4)
    net.eval()  # TEST: the accumulated global statistics
    assert not bn.training
    net.train()
    plain = VOCClassifierNet(backbone_parts(model, "voc07-cls")).train()
    assert not plain.features.training  # the default: BN global statistics throughout
