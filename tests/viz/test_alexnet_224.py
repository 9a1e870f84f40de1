"""The full-size AlexNet (224 px): filters and gradient-ascent defaults (slow: 58M params)."""

from __future__ import annotations

import pytest
import torch

import dcbench
from dcbench.viz.ascent import AscentConfig, gradient_ascent, initial_image
from dcbench.viz.filters import effective_filters, filters_image

pytestmark = pytest.mark.slow


def test_alexnet_filters_and_ascent_defaults():
    torch.set_num_threads(1)
    model = dcbench.load_model("random-alexnet-sobel")
    assert effective_filters(model).shape == (96, 3, 13, 13)  # 11x11 conv1 + 3x3 Sobel
    assert filters_image(model, scale=1).shape == (10 * 14 + 1, 10 * 14 + 1, 3)
    config = AscentConfig(iters=150)
    result = gradient_ascent(model, "conv5", 0, config)
    assert result.image.shape == (3, 224, 224)
    start = initial_image(model, 224, config.noise_std, config.seed)
    with torch.no_grad():
        on_noise = float(model.forward_features(start, ["conv5"])["conv5"][0, 0].mean())
    assert result.final_activation > 3.0 * on_noise
