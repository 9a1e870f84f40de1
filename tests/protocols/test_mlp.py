"""The mlp protocol's pieces: the frozen trunk's output and a freshly initialised fc6-fc8."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dcbench.core.errors import UserError
from dcbench.protocols.mlp import INPUT_KEY, check_mlp_backbone, fresh_mlp, mlp_featurizer


def test_featurizer_is_the_classifier_input(small_net):
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    feats = mlp_featurizer(small_net)(x)[INPUT_KEY]
    with torch.no_grad():
        # the network's own path: the classifier applied to this input gives its fc7 (+ReLU)
        expected = small_net.eval().trunk_forward(x)
        assert torch.allclose(small_net.classifier(feats), expected, atol=1e-5)
    assert feats.shape == (2, 64 * 3 * 3)


def test_fresh_mlp_reinitialises_a_copy_and_adds_fc8(small_net):
    original = [p.clone() for p in small_net.classifier.parameters()]
    torch.manual_seed(0)
    head = fresh_mlp(small_net.classifier, num_classes=5)
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    assert [m.out_features for m in linears] == [256, 256, 5]
    for layer in linears:
        assert layer.weight.requires_grad and torch.count_nonzero(layer.bias) == 0
        assert abs(layer.weight.std().item() - 0.01) < 0.002
    for before, after in zip(original, small_net.classifier.parameters(), strict=True):
        assert torch.equal(before, after)  # the backbone's classifier is untouched


def test_resnet_is_refused():
    from dcbench.models import create_backbone

    net = create_backbone({"arch": "resnet50", "sobel": False}, seed=0)
    with pytest.raises(UserError, match="needs an AlexNet or VGG16"):
        check_mlp_backbone(net)
