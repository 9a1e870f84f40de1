"""The named pipelines: output shapes, normalisation and crops checked by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dcbench.core.errors import UserError
from dcbench.data import transforms as T

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)


def _image(h: int, w: int, seed: int = 0) -> tuple[Image.Image, np.ndarray]:
    arr = np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    return Image.fromarray(arr), arr


def _by_hand(arr: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(arr).permute(2, 0, 1).double() / 255
    return ((x - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]).float()


def test_center_crop_is_resize_then_central_window() -> None:
    img, arr = _image(73, 73)  # already at the resize size: only the crop acts
    out = T.center_crop(size=64, resize=73, mean=MEAN, std=STD)(img)
    assert out.dtype == torch.float32 and out.shape == (3, 64, 64)
    top = (73 - 64) // 2  # torchvision rounds the offset: int(round(4.5)) == 4
    torch.testing.assert_close(out, _by_hand(arr[top : top + 64, top : top + 64]))
    wide, _ = _image(80, 120)
    assert T.center_crop(32, 40)(wide).shape == (3, 32, 32)


def test_ten_crop_stacks_corners_centre_and_flips() -> None:
    img, arr = _image(10, 10, seed=1)
    out = T.ten_crop(size=6, resize=10, mean=MEAN, std=STD)(img)
    assert out.shape == (10, 3, 6, 6)
    full = _by_hand(arr)
    torch.testing.assert_close(out[0], full[:, :6, :6])  # top-left
    torch.testing.assert_close(out[3], full[:, 4:, 4:])  # bottom-right
    flipped = full.flip(-1)
    torch.testing.assert_close(out[5], flipped[:, :6, :6])  # first crop of the flipped image


def test_random_pipelines_shapes_and_seeded_determinism() -> None:
    img, _ = _image(90, 70)
    for make in (T.deepcluster_train, T.linear_train, T.voc_train):
        pipe = make(32) if make is not T.linear_train else make(32, 40)
        torch.manual_seed(0)
        a = pipe(img)
        torch.manual_seed(0)
        b = pipe(img)
        assert a.shape == (3, 32, 32) and torch.equal(a, b)


def test_plain_and_float_tensor_and_registry() -> None:
    img, arr = _image(5, 7)
    torch.testing.assert_close(T.plain(MEAN, STD)(img), _by_hand(arr))
    x = T.to_float_tensor(img)
    assert x.dtype == torch.float32 and float(x.max()) <= 1.0
    assert T.build("center_crop", size=8, resize=9)(img).shape == (3, 8, 8)
    with pytest.raises(UserError, match="Did you mean ten_crop"):
        T.build("ten_crops")
    with pytest.raises(ValueError, match="already registered"):
        T.register_pipeline("plain", T.plain)
