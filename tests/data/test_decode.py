"""Robust decoding: odd but valid images become correct RGB, broken files become None."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dcbench.data.decode import decode_image, open_image, to_rgb


def _jpeg_bytes(arr: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode=mode).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def test_zero_byte_and_text_files_are_none(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    assert open_image(empty) is None
    assert "0 bytes" in decode_image(empty).problem
    assert open_image(text) is None
    assert "not a readable image" in decode_image(text).problem
    assert open_image(tmp_path / "missing.jpg") is None


def test_truncated_jpeg_tail_is_bad_by_default_partial_on_request(tmp_path: Path) -> None:
    data = _jpeg_bytes(_noise(64, 64))
    tail = tmp_path / "tail.jpg"
    tail.write_bytes(data[: len(data) // 2])
    head = tmp_path / "head.jpg"
    head.write_bytes(data[:200])
    result = decode_image(tail, allow_truncated=True)
    assert result.image is not None and result.partial and result.image.size == (64, 64)
    strict = decode_image(tail)
    assert strict.image is None and "truncated" in strict.problem
    assert open_image(head) is None
    # the retry must not leave PIL's global flag switched on
    from PIL import ImageFile

    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path, quality=100)  # pure red in CMYK
    img = open_image(path)
    assert img is not None and img.mode == "RGB"
    r, g, b = np.asarray(img).reshape(-1, 3).mean(axis=0)
    assert r > 200 and g < 60 and b < 60


def test_grayscale_and_16bit_png_are_scaled_not_clipped(tmp_path: Path) -> None:
    gray = tmp_path / "gray.png"
    Image.fromarray(np.full((8, 8), 77, dtype=np.uint8), mode="L").save(gray)
    arr = np.asarray(open_image(gray))
    assert arr.shape == (8, 8, 3) and (arr == 77).all()

    deep = tmp_path / "deep.png"
    values = np.array([[0, 32896, 65535, 1000]], dtype=np.uint16)
    Image.fromarray(values).save(deep)  # PIL writes mode I;16
    with Image.open(deep) as check:
        assert check.mode.startswith("I")
    out = np.asarray(open_image(deep))[0, :, 0]
    # hand-worked: v * 255 / 65535, rounded
    assert out.tolist() == [0, 128, 255, 4]


def test_palette_with_transparency_and_rgba_composite_on_white(tmp_path: Path) -> None:
    pal = Image.new("P", (4, 4), 0)
    pal.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    pal.putpixel((0, 0), 1)
    pal.info["transparency"] = 0
    path = tmp_path / "pal.png"
    pal.save(path, transparency=0)
    arr = np.asarray(open_image(path))
    assert arr[0, 0].tolist() == [200, 100, 50]
    assert arr[1, 1].tolist() == [255, 255, 255]  # transparent index -> white

    rgba = Image.new("RGBA", (2, 2), (100, 0, 0, 128))
    out = np.asarray(to_rgb(rgba))[0, 0]
    # hand-worked alpha blend over white with a = 128/255: c * a + 255 * (1 - a)
    a = 128 / 255
    assert abs(int(out[0]) - (100 * a + 255 * (1 - a))) <= 1
    assert abs(int(out[1]) - 255 * (1 - a)) <= 1 and abs(int(out[2]) - 255 * (1 - a)) <= 1


def test_huge_jpeg_is_drafted_down_and_huge_png_is_skipped(tmp_path: Path) -> None:
    jpg = tmp_path / "big.jpg"
    jpg.write_bytes(_jpeg_bytes(_noise(256, 320)))
    img = open_image(jpg, max_pixels=100 * 100)
    assert img is not None and img.size[0] < 320 and img.size[1] < 256
    png = tmp_path / "big.png"
    Image.fromarray(_noise(256, 320)).save(png)
    result = decode_image(png, max_pixels=100 * 100)
    assert result.image is None and "too large" in result.problem


def test_decompression_bomb_guard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # bomb error above 2000 pixels
    jpg = tmp_path / "bomb.jpg"
    jpg.write_bytes(_jpeg_bytes(_noise(128, 128)))
    png = tmp_path / "bomb.png"
    Image.fromarray(_noise(128, 128)).save(png)
    img = open_image(jpg, max_pixels=32 * 32)
    assert img is not None and img.size[0] <= 64  # JPEG: reopened and drafted
    assert "too large" in decode_image(png).problem
    assert Image.MAX_IMAGE_PIXELS == 1000  # scoped override restored
