"""Top images per channel: ranking against a plain re-implementation, shapes, CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dcbench.cli.entry import main
from dcbench.core.errors import UserError
from dcbench.viz.activations import activations_image, find_top_activations, top_images
from dcbench.viz.tap_stats import image_dataset, pick_indices


def test_top_images_by_hand():
    scores = torch.tensor([[0.1, 5.0], [0.9, 5.0], [0.5, 1.0], [0.9, 0.0]])
    # channel 0: 0.9 (rows 1 and 3, tie -> dataset order), then 0.5; channel 1: rows 0, 1 tie
    assert top_images(scores, [0, 1], 3).tolist() == [[1, 3, 2], [0, 1, 2]]
    with pytest.raises(UserError):
        top_images(scores, [0], 5)


def test_matches_a_plain_reimplementation(synth, small_sobel):
    result = find_top_activations(small_sobel, synth / "train", "conv3", [2, 5, 40], top=4)
    dataset = image_dataset(small_sobel, synth / "train")
    good = [i for i in range(len(dataset)) if dataset[i][0] is not None]
    assert result.skipped == 1 and len(good) == len(dataset) - 1
    with torch.no_grad():
        batch = torch.stack([dataset[i][0] for i in good])
        means = small_sobel.forward_features(batch, ["conv3"])["conv3"].mean(dim=(2, 3))
    for row, channel in enumerate([2, 5, 40]):
        ranked = sorted(range(len(good)), key=lambda i: (-float(means[i, channel]), i))[:4]
        assert result.indices[row].tolist() == [good[i] for i in ranked]
        np.testing.assert_allclose(result.scores[row], means[ranked, channel].numpy(), rtol=1e-5)
        assert (np.diff(result.scores[row]) <= 0).all()


def test_image_shape_and_determinism(synth, small_sobel):
    a = find_top_activations(small_sobel, synth / "val", "conv2", top=3, max_images=12)
    assert a.channels == list(range(8)) and a.indices.shape == (8, 3)
    n = len(image_dataset(small_sobel, synth / "val"))
    assert set(a.indices.flatten().tolist()) <= set(pick_indices(n, 12).tolist())
    image = activations_image(a, small_sobel, synth / "val", scale=1)
    # a 29-px title band (16-px font), 8 rows x 3 columns of 66-px cells (+2), a label column
    # (the canvas widens to the title when that is wider)
    assert image.shape[0] == 29 + 8 * 66 + 2 and image.shape[1] >= 3 * 66 + 2 + 30
    # by default 64-px images are enlarged to tiles of at least 96 px (scale 2)
    image = activations_image(a, small_sobel, synth / "val")
    assert image.shape[0] == 29 + (8 * 66 + 2) * 2
    b = find_top_activations(small_sobel, synth / "val", "conv2", top=3, max_images=12)
    np.testing.assert_array_equal(activations_image(b, small_sobel, synth / "val"), image)


def test_bad_channels_and_layer(synth, small_sobel):
    with pytest.raises(UserError, match="channels 0..63"):
        find_top_activations(small_sobel, synth / "val", "conv2", [64])
    with pytest.raises(UserError, match="unknown layer"):
        find_top_activations(small_sobel, synth / "val", "conv7", [0])


def test_cli(synth, tmp_path, capsys):
    out = tmp_path / "top.png"
    argv = ["viz", "activations", "--model", "random-alexnet_small-sobel", "--data",
            str(synth / "val"), "--layer", "conv4", "--channels", "1,3-4", "--top", "5",
            "--scale", "2", "--out", str(out)]
    assert main(argv) == 0
    width, height = Image.open(out).size
    assert height == 29 + (3 * 66 + 2) * 2  # title band + 3 rows
    assert (5 * 66 + 2) * 2 + 30 <= width <= (5 * 66 + 2) * 2 + 60  # + the "ch 4" column
    assert main(argv[:-4] + ["--channels", "x", "--out", str(tmp_path / "b.png")]) == 2
    assert "bad channel list" in capsys.readouterr().err
    assert not (tmp_path / "b.png").exists()
