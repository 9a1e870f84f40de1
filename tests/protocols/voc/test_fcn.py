"""FCN-32s net surgery: convolutionalised fc6/fc7 equal the Linear ones; output size."""

from __future__ import annotations

import pytest
import torch

import dcbench
from dcbench.protocols.voc.fcn import FCNNet
from dcbench.protocols.voc.nets import backbone_parts
from dcbench.protocols.voc12_seg import SEG_CLASSES


@pytest.fixture()
def model():
    return dcbench.load_model("arch:alexnet_small?sobel=1&seed=0")


def test_convolutionalised_fc_layers_equal_the_linear_ones(model):
    parts = backbone_parts(model, "voc12-seg")
    net = FCNNet(parts).eval()
    grid = parts.grid
    pool5 = torch.randn(2, parts.conv_channels, grid, grid)
    dense = net.classifier(pool5)[:, :, grid // 2, grid // 2]  # the window covering the map
    model.eval()
    linear = model.classifier(torch.flatten(pool5, 1))
    torch.testing.assert_close(dense, linear, rtol=1e-4, atol=1e-5)


def test_fcn_output_matches_input_size(model):
    net = FCNNet(backbone_parts(model, "voc12-seg")).eval()
    out = net(torch.randn(1, 3, 77, 101))
    assert out.shape == (1, len(SEG_CLASSES), 77, 101)
