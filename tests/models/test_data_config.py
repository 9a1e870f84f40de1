"""The data config and transform helper, checked against a plain torchvision pipeline."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import functional as F

import dcbench


def _image() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (90, 120, 3), dtype=np.uint8))


def test_data_config_of_our_models():
    model = dcbench.load_model("random-alexnet_small-sobel")
    cfg = dcbench.resolve_data_config(model)
    assert cfg["input_size"] == (3, 64, 64)
    assert cfg["mean"] == (0.485, 0.456, 0.406) and cfg["interpolation"] == "bilinear"


def test_eval_transform_equals_resize_centre_crop_normalise():
    model = dcbench.load_model("random-alexnet_small-sobel")
    out = dcbench.create_transform(model)(_image())
    cfg = dcbench.resolve_data_config(model)
    # the reference: the classic torchvision.transforms.functional recipe
    img = F.resize(_image(), round(64 / cfg["crop_pct"]), antialias=True)
    ref = F.normalize(F.to_tensor(F.center_crop(img, 64)), cfg["mean"], cfg["std"])
    # PIL and tensor resizing may round one grey level apart (1/255/std < 0.02)
    assert out.shape == (3, 64, 64) and torch.allclose(out, ref, atol=0.02)
    assert model(out[None]).shape == (1, model.num_features)


def test_train_transform_is_random_but_sized():
    transform = dcbench.create_transform({"input_size": 48}, is_training=True)
    a, b = transform(_image()), transform(_image())
    assert a.shape == b.shape == (3, 48, 48)
