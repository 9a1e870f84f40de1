"""The timm-like Python surface: `forward_head`, `reset_classifier`, `get_classifier`,
`list_models(pretrained=True)`, checked against plain computations and timm/torchvision."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

import dcbench
from dcbench.models import create_backbone


def _fc7_by_hand(model, x):
    """The official AlexNet forward, written out: Sobel, features, pool, classifier to fc7."""
    h = model.sobel(x) if model.sobel is not None else x
    h = torch.flatten(model.avgpool(model.features(h)), 1)
    c = model.classifier  # Dropout, Linear (fc6), ReLU, Dropout, Linear (fc7), ReLU
    return c[4](torch.relu(c[1](h)))


@torch.no_grad()
def test_forward_head_splits_forward_like_timm():
    model = create_backbone({"arch": "alexnet_small", "sobel": True, "num_classes": 5},
                            seed=0).eval()
    x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    fmap = model.forward_features(x)
    assert fmap.dim() == 4
    emb = model.forward_head(fmap, pre_logits=True)
    assert emb.shape == (3, model.num_features)
    torch.testing.assert_close(emb, _fc7_by_hand(model, x))
    logits = model.forward_head(fmap)
    torch.testing.assert_close(logits, model(x))
    top = model.get_classifier()
    torch.testing.assert_close(logits, torch.relu(emb) @ top.weight.T + top.bias)


@torch.no_grad()
def test_reset_classifier_changes_what_model_returns():
    model = create_backbone({"arch": "alexnet_small", "sobel": False}, seed=1).eval()
    x = torch.rand(2, 3, 64, 64)
    assert model(x).shape == (2, model.num_features)
    assert isinstance(model.get_classifier(), nn.Identity)
    model.reset_classifier(10)
    assert model(x).shape == (2, 10) and model.get_classifier().out_features == 10
    assert model.forward_head(model.forward_features(x), pre_logits=True).shape == \
        (2, model.num_features)
    model.reset_classifier(0)
    torch.testing.assert_close(model(x), _fc7_by_hand(model, x))


@torch.no_grad()
def test_forward_head_matches_torchvision_resnet_without_fc():
    model = dcbench.load_model("torchvision:resnet18@random")
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    ref = torchvision.models.resnet18()
    ref.load_state_dict(model.net.state_dict())
    ref.fc = nn.Identity()
    torch.testing.assert_close(model.forward_head(model.forward_features(x)), ref.eval()(x))


@torch.no_grad()
def test_forward_head_matches_timm():
    timm = pytest.importorskip("timm")
    model = dcbench.load_model("timm:resnet18@random")
    ref = timm.create_model("resnet18", pretrained=False, num_classes=0)
    ref.load_state_dict(model.net.state_dict())
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    ours = model.forward_head(model.forward_features(x), pre_logits=True)
    torch.testing.assert_close(ours, ref.eval().forward_head(ref.forward_features(x),
                                                              pre_logits=True))


def test_list_models_takes_timms_arguments():
    everything = dcbench.list_models()
    with_weights = dcbench.list_models(pretrained=True)
    assert "deepcluster-alexnet" in with_weights and "deepclusterv2-r50-800ep" in with_weights
    # random inits and thesis models without a released checkpoint have no weights
    for name in ("random-alexnet-sobel", "km-imnet-sob", "arch:vgg16"):
        assert name in everything and name not in with_weights
    assert set(with_weights) < set(everything)
    assert dcbench.list_models("deepcluster-*", pretrained=True) == \
        ["deepcluster-alexnet", "deepcluster-vgg16"]
    assert dcbench.list_models(filter=["deepcluster-*", "arch:vgg*"],
                               exclude_filters="*vgg16") == ["deepcluster-alexnet"]
    assert dcbench.list_models("") == everything  # timm's default filter ''
