"""Gradient ascent: it must actually fire the channel, deterministically, with the set penalties."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dcbench.cli.entry import main
from dcbench.core.errors import UserError
from dcbench.viz.ascent import (
    AscentConfig,
    ascent_figure,
    blur,
    channel_means,
    deprocess,
    gradient_ascent,
    initial_image,
)

FAST = AscentConfig(iters=80, seed=0)


def _activation(model, x: torch.Tensor, layer: str, channel: int) -> float:
    """Independent re-measure: the tap's spatial mean for one channel, post-ReLU."""
    with torch.no_grad():
        tap = model.forward_features(x.unsqueeze(0), [layer])[layer]
    return float(tap[0, channel].mean())


@pytest.mark.parametrize("objective", ["ce", "mean"])
def test_ascent_fires_the_channel_far_above_noise(small_sobel, objective):
    config = AscentConfig(iters=80, seed=0, objective=objective)
    for channel in (0, 3):
        result = gradient_ascent(small_sobel, "conv3", channel, config)
        start = initial_image(small_sobel, 64, config.noise_std, config.seed)[0]
        on_noise = _activation(small_sobel, start, "conv3", channel)
        on_result = _activation(small_sobel, result.image, "conv3", channel)
        assert on_noise == pytest.approx(result.start_activation, rel=1e-5)
        assert on_result == pytest.approx(result.final_activation, rel=1e-5)
        assert on_result > 3.0 * on_noise and on_result > 0.1
        assert len(result.history) == config.iters


def test_ce_objective_is_more_selective_than_plain_mean(small_sobel):
    """The official CE objective raises the target relative to the layer's other channels."""
    def selectivity(channel: int, objective: str) -> float:
        r = gradient_ascent(small_sobel, "conv3", channel,
                            AscentConfig(iters=150, objective=objective))
        with torch.no_grad():
            means = channel_means(small_sobel.forward_features(r.image[None], ["conv3"])["conv3"])
        others = torch.cat([means[:channel], means[channel + 1 :]])
        return float(means[channel] / others.mean())

    for channel in (0, 1):
        assert selectivity(channel, "ce") > selectivity(channel, "mean") > 3.0


def test_ascent_is_deterministic_given_a_seed(small_sobel):
    a = gradient_ascent(small_sobel, "conv2", 2, AscentConfig(iters=20, seed=5))
    b = gradient_ascent(small_sobel, "conv2", 2, AscentConfig(iters=20, seed=5))
    c = gradient_ascent(small_sobel, "conv2", 2, AscentConfig(iters=20, seed=6))
    assert torch.equal(a.image, b.image) and a.history == b.history
    assert not torch.equal(a.image, c.image)


def test_dead_channel_still_gets_a_gradient(small_sobel):
    """A channel that is zero everywhere on the start image is revived via its pre-ReLU map."""
    start = initial_image(small_sobel, 64, 0.08, 0)
    with torch.no_grad():
        means = channel_means(small_sobel.forward_features(start, ["conv5"])["conv5"])
    dead = torch.nonzero(means == 0).flatten()
    if dead.numel() == 0:
        pytest.skip("no dead conv5 channel on this noise image")
    result = gradient_ascent(small_sobel, "conv5", int(dead[0]), AscentConfig(iters=40))
    assert result.start_activation == 0.0 and result.final_activation > 0.0


def test_blur_and_penalty_smooth_the_image(small_sobel):
    """Blur every step and a strong L2 penalty give a smaller, smoother input than neither."""
    def roughness(x: torch.Tensor) -> float:
        return float((x[:, 1:, :] - x[:, :-1, :]).abs().mean())

    plain = gradient_ascent(small_sobel, "conv3", 0,
                            AscentConfig(iters=40, sigma=0.0, weight_decay=0.0))
    smooth = gradient_ascent(small_sobel, "conv3", 0,
                             AscentConfig(iters=40, sigma=1.5, blur_every=1, weight_decay=1e-3))
    assert roughness(smooth.image) < 0.5 * roughness(plain.image)
    assert smooth.image.norm() < plain.image.norm()


def test_blur_keeps_the_mean_and_is_gaussian():
    x = torch.zeros(1, 1, 15, 15)
    x[0, 0, 7, 7] = 1.0
    y = blur(x, 1.0)[0, 0]
    assert float(y.sum()) == pytest.approx(1.0, abs=1e-5)
    g = np.exp(-np.arange(-3, 4) ** 2 / 2.0)
    g /= g.sum()  # 7-tap kernel for sigma 1 (radius 3 sigma)
    np.testing.assert_allclose(y[4:11, 4:11].numpy(), np.outer(g, g), atol=1e-6)
    assert torch.equal(blur(x, 0.0), x)


def test_deprocess_is_the_official_display_mapping():
    img = torch.randn(3, 16, 16, generator=torch.Generator().manual_seed(0))
    out = deprocess(img, [0.0, 0.0, 0.0], [1.0, 1.0, 1.0])
    ref = ((img - img.mean()) / (img.std() + 1e-5) * 0.1 + 0.5).clamp(0, 1)
    torch.testing.assert_close(out, ref)


def test_bad_requests_are_refused(small_sobel):
    with pytest.raises(UserError, match="out of range"):
        gradient_ascent(small_sobel, "conv3", 96, FAST)
    with pytest.raises(UserError, match="unknown layer"):
        gradient_ascent(small_sobel, "conv9", 0, FAST)
    with pytest.raises(UserError, match="objective"):
        gradient_ascent(small_sobel, "conv3", 0, AscentConfig(objective="max"))


def test_figure_and_cli(small_sobel, tmp_path, capsys):
    image, results = ascent_figure(small_sobel, "conv2", [0, 1, 2], AscentConfig(iters=10),
                                   columns=2, scale=2)
    assert image.shape == ((2 * 66 + 2) * 2, (2 * 66 + 2) * 2, 3)
    assert [r.channel for r in results] == [0, 1, 2]
    out = tmp_path / "ga.png"
    argv = ["viz", "gradient-ascent", "--model", "random-alexnet_small-sobel", "--layer", "conv2",
            "--channels", "0-1", "--iters", "10", "--seed", "3", "--out", str(out)]
    assert main(argv) == 0
    first = out.read_bytes()
    # 64 px tiles drawn at 128 px (auto scale 2), under channel labels and a two-line title
    width, height = Image.open(out).size
    assert width >= 2 * 128 and height >= 128 + 14 + 2 * 18
    title = np.asarray(Image.open(out).convert("L"))[:36]
    assert (title < 100).any() and (title == 255).mean() > 0.5  # dark text on white
    assert "conv2 channel 1: mean activation" in capsys.readouterr().out
    assert main(argv) == 0 and out.read_bytes() == first
