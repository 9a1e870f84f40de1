"""Image plumbing shared by the visualisations: normalise, tile, label, encode as PNG.

Everything here is pure (tensors/arrays in, arrays or bytes out) so the figures can be tested
without touching the disk; `save_png` is the one writer and it is atomic.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torchvision.utils import make_grid

from dcbench.core.files import write_bytes

# A tile is a (3, H, W) float tensor in [0, 1]; None leaves a blank cell.
Tile = torch.Tensor | None


def minmax_per_item(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Rescale every item of a batch (N, ...) to [0, 1] on its own (min -> 0, max -> 1).

    A constant item becomes 0.5 grey, so a dead filter reads as "nothing" rather than black.
    """
    flat = x.detach().float().reshape(x.shape[0], -1)
    lo = flat.min(dim=1, keepdim=True).values
    hi = flat.max(dim=1, keepdim=True).values
    span = hi - lo
    out = torch.where(span > eps, (flat - lo) / span.clamp_min(eps), torch.full_like(flat, 0.5))
    return out.reshape(x.shape)


def denormalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Undo `Normalize(mean, std)` on (N, 3, H, W) or (3, H, W) and clip to [0, 1] for display."""
    m = torch.as_tensor(list(mean), dtype=x.dtype, device=x.device).view(-1, 1, 1)
    s = torch.as_tensor(list(std), dtype=x.dtype, device=x.device).view(-1, 1, 1)
    return (x * s + m).clamp(0.0, 1.0)


def border(tile: torch.Tensor, color: Sequence[float], width: int = 2) -> torch.Tensor:
    """A copy of `tile` (3, H, W) with a coloured frame of `width` pixels drawn inside it."""
    out = tile.clone()
    c = torch.as_tensor(list(color), dtype=out.dtype).view(3, 1, 1)
    w = max(1, min(width, min(out.shape[-2:]) // 4))
    out[:, :w, :] = c
    out[:, -w:, :] = c
    out[:, :, :w] = c
    out[:, :, -w:] = c
    return out


def tile_rows(
    rows: Sequence[Sequence[Tile]], padding: int = 2, pad_value: float = 1.0
) -> np.ndarray:
    """Lay out rows of equally sized tiles on a white canvas -> uint8 (H, W, 3).

    Rows shorter than the longest one, and `None` cells, are left blank. The tiling itself is
    torchvision's `make_grid`.
    """
    shapes = {tuple(t.shape) for row in rows for t in row if t is not None}
    if not shapes:
        raise ValueError("tile_rows: no tiles to lay out")
    if len(shapes) != 1:
        raise ValueError(f"tile_rows: tiles differ in shape: {sorted(shapes)}")
    shape = shapes.pop()
    ncols = max(len(row) for row in rows)
    blank = torch.full(shape, float(pad_value))
    flat = [
        (row[j] if j < len(row) and row[j] is not None else blank).float().clamp(0.0, 1.0)
        for row in rows
        for j in range(ncols)
    ]
    grid = make_grid(torch.stack(flat), nrow=ncols, padding=padding, pad_value=pad_value)
    return to_uint8(grid)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> (H, W, 3) uint8, rounding to nearest."""
    arr = image.detach().float().clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)
    return arr.permute(1, 2, 0).contiguous().numpy()


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement by an integer factor (small filters stay crisp)."""
    if factor < 1:
        raise ValueError(f"upscale factor must be >= 1, got {factor}")
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1) if factor > 1 else image


#: text size of every label and title drawn on the PIL figures (PIL's scalable default font)
FONT_SIZE = 14
TITLE_SIZE = 16
#: the smallest tile side (pixels) the figures show an image at; smaller images are enlarged
MIN_TILE = 96
GENERIC_NAMES = ("final", "latest", "checkpoints", "model.safetensors", "checkpoint.pth.tar")


def font(size: int = FONT_SIZE) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """PIL's built-in scalable font at `size` px (no font file needed)."""
    return ImageFont.load_default(size=size)


def text_width(text: str, size: int = FONT_SIZE) -> int:
    """Width in pixels of one line of `text` in `font(size)`."""
    return int(math.ceil(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(text,
                                                                             font=font(size))))


def short_name(spec: str) -> str:
    """A model spec as a figure label: a path's last meaningful folder (`runs/tiny/final` ->
    `tiny`), a hub id's repository, a catalog name unchanged; never a path separator."""
    text = str(spec).rstrip("/\\")
    for prefix in ("hf-hub:", "torchvision:", "timm:"):
        text = text.removeprefix(prefix)
    parts = [p for p in text.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    while len(parts) > 1 and parts[-1] in GENERIC_NAMES:
        parts.pop()
    name = parts[-1] if parts else str(spec)
    for suffix in (".safetensors", ".pth.tar", ".pth"):
        name = name.removesuffix(suffix)
    return name or "model"


def wrap_text(text: str, width: int, size: int = FONT_SIZE) -> list[str]:
    """Break `text` into lines no wider than `width` px: at spaces, else after `-_/:`, else
    anywhere (a single long word is split rather than drawn past its column)."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if text_width(candidate, size) <= width:
                line = candidate
                continue
            if line:
                lines.append(line)
            line = ""
            while text_width(word, size) > width and len(word) > 1:
                cut = max(1, max((i + 1 for i, ch in enumerate(word[:-1]) if ch in "-_/:"
                                  and text_width(word[:i + 1], size) <= width), default=0))
                if cut == 1:  # no break character fits: the longest prefix that does
                    cut = max(1, max((i for i in range(1, len(word))
                                      if text_width(word[:i], size) <= width), default=1))
                lines.append(word[:cut])
                word = word[cut:]
            line = word
        lines.append(line)
    return lines


def header_layout(texts: Sequence[tuple[int, str]], width: int,
                  size: int = FONT_SIZE) -> list[tuple[int, int, str]]:
    """(x, y, line) of every header line: each text wrapped to the room before the next one
    (or the image's right edge), so no two labels overlap and none is cut off."""
    ordered = sorted(texts)
    line_h = size + 4
    placed = []
    for i, (x, text) in enumerate(ordered):
        right = ordered[i + 1][0] if i + 1 < len(ordered) else width
        room = max(right - x - 8, size)
        for j, line in enumerate(wrap_text(text, room, size)):
            placed.append((x + 2, 2 + j * line_h, line))
    return placed


def with_header(
    image: np.ndarray, texts: Sequence[tuple[int, str]], height: int | None = None,
    size: int = FONT_SIZE,
) -> np.ndarray:
    """Add a white strip above `image` with each `(x, text)` written from column x, wrapped
    to the room before the next text (see `header_layout`); the strip grows to fit."""
    placed = header_layout(texts, image.shape[1], size)
    needed = max((y for _, y, _ in placed), default=0) + size + 6
    height = max(height or 0, needed)
    canvas = Image.new("RGB", (image.shape[1], image.shape[0] + height), (255, 255, 255))
    canvas.paste(Image.fromarray(image), (0, height))
    draw = ImageDraw.Draw(canvas)
    for x, y, line in placed:
        draw.text((x, y), line, fill=(0, 0, 0), font=font(size))
    return np.asarray(canvas)


def with_row_labels(
    image: np.ndarray, texts: Sequence[tuple[int, str]], width: int | None = None,
    size: int = FONT_SIZE,
) -> np.ndarray:
    """Add a white strip left of `image` with each `(y, text)` written at row y (the strip
    is as wide as the widest label)."""
    width = max(width or 0, max((text_width(t, size) for _, t in texts), default=0) + 10)
    canvas = Image.new("RGB", (image.shape[1] + width, image.shape[0]), (255, 255, 255))
    canvas.paste(Image.fromarray(image), (width, 0))
    draw = ImageDraw.Draw(canvas)
    for y, text in texts:
        draw.text((4, y), text, fill=(0, 0, 0), font=font(size))
    return np.asarray(canvas)


def with_title(image: np.ndarray, lines: Sequence[str], font_size: int = TITLE_SIZE
               ) -> np.ndarray:
    """Add a white band above `image` with one or more lines of text (a figure title).

    The canvas widens (image centred) when a line is wider than the image.
    """
    widths = [text_width(line, font_size) for line in lines]
    line_h = font_size + 5
    width = max(image.shape[1], max(widths, default=0) + 12)
    height = image.shape[0] + line_h * len(lines) + 8
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    canvas.paste(Image.fromarray(image), ((width - image.shape[1]) // 2, height - image.shape[0]))
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(lines):
        draw.text((6, 4 + i * line_h), line, fill=(0, 0, 0), font=font(font_size))
    return np.asarray(canvas)


def auto_scale(tile: int, minimum: int = MIN_TILE) -> int:
    """The smallest integer enlargement that shows a `tile`-px image at >= `minimum` px."""
    return max(1, math.ceil(minimum / max(1, tile)))


def png_bytes(image: np.ndarray) -> bytes:
    """Encode a uint8 (H, W, 3) array as PNG (no timestamps: same pixels -> same bytes)."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 (H, W, 3) array, got {image.dtype} {image.shape}")
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def save_png(image: np.ndarray, path: str | os.PathLike) -> None:
    """Write `image` as a PNG atomically (temp file + rename)."""
    write_bytes(path, png_bytes(image))
