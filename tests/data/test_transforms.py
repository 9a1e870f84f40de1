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


def caffe_jitter_port(image: np.ndarray, size: int, factor: float, top: int, left: int,
                      mirror: bool) -> np.ndarray:
    """The scale-jitter crop rule written out with loops over numpy: bilinear resize with
    half-pixel centres (OpenCV INTER_LINEAR, source index clamped at 0 and the last pixel),
    zero-filled window at (top, left), optional mirror. `image` is (C, H, W) float64."""
    c, h, w = image.shape
    new_h, new_w = max(1, round(h * factor)), max(1, round(w * factor))

    def taps(n_out: int, n_in: int) -> list[tuple[int, int, float]]:
        out = []
        for i in range(n_out):
            src = max((i + 0.5) * n_in / n_out - 0.5, 0.0)
            i0 = min(int(np.floor(src)), n_in - 1)
            out.append((i0, min(i0 + 1, n_in - 1), src - i0))
        return out

    rows, cols = taps(new_h, h), taps(new_w, w)
    resized = np.zeros((c, new_h, new_w))
    for y, (y0, y1, ly) in enumerate(rows):
        for x, (x0, x1, lx) in enumerate(cols):
            resized[:, y, x] = ((1 - ly) * ((1 - lx) * image[:, y0, x0] + lx * image[:, y0, x1])
                                + ly * ((1 - lx) * image[:, y1, x0] + lx * image[:, y1, x1]))
    out = np.zeros((c, size, size))
    for y in range(size):
        for x in range(size):
            sy, sx = top + y, left + x
            if 0 <= sy < new_h and 0 <= sx < new_w:
                out[:, y, x] = resized[:, sy, sx]
    return out[:, :, ::-1] if mirror else out


@pytest.mark.parametrize(("shape", "params"), [
    ((3, 20, 30), (1.7, 5, 12, False)),   # upscaled, window inside
    ((3, 20, 30), (0.55, -3, 0, True)),   # downscaled below the crop: zero border, mirrored
    ((3, 17, 9), (1.0, 1, -4, False)),    # unscaled, narrow side padded
])
def test_scale_jitter_crop_matches_the_rule(shape, params) -> None:
    image = torch.rand(shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    got = T.ScaleJitterCrop(16).apply(image.float(), params).double().numpy()
    np.testing.assert_allclose(got, caffe_jitter_port(image.numpy(), 16, *params), atol=1e-5)


def test_scale_jitter_draws_cover_the_range_and_stay_in_bounds() -> None:
    jitter = T.ScaleJitterCrop(16, (0.5, 2.0))
    torch.manual_seed(0)
    draws = [jitter.make_params(24, 40) for _ in range(400)]
    factors = np.array([d[0] for d in draws])
    assert factors.min() >= 0.5 and factors.max() <= 2.0
    assert factors.min() < 0.55 and factors.max() > 1.95
    for factor, top, left, _ in draws:
        for offset, length in ((top, round(24 * factor)), (left, round(40 * factor))):
            assert min(0, length - 16) <= offset <= max(0, length - 16)
    assert 0.4 < np.mean([d[3] for d in draws]) < 0.6
    pipeline = T.build("voc_caffe_train", size=16)
    out = pipeline(Image.fromarray(np.full((24, 40, 3), 255, np.uint8)))
    assert out.shape == (3, 16, 16) and out.dtype == torch.float32
