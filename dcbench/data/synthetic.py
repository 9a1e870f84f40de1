"""Built-in datasets drawn procedurally, so every feature runs end to end without downloads.

`make_classification_set` writes an ImageNet-style tree *and* Places-style list files of
shape/texture classes with random colours (colour is a nuisance, so Sobel input matters);
`make_voc_set` (in `synthetic_voc`) writes VOC2007/VOC2012 devkit trees. Each image is drawn
from its own generator `default_rng([seed, stream, class, index])`, so the files depend only
on the seed and their own position, and the same seed gives byte-identical files. Output is
built in a hidden staging folder and renamed into place: nothing is left half-written.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from dcbench.core.errors import UserError
from dcbench.core.files import staged_dir
from dcbench.data import shapes
from dcbench.data.synthetic_voc import write_voc_set

SUPERSAMPLE = 2
CORRUPT_KINDS: tuple[str, ...] = ("empty", "text", "truncated-header", "truncated-tail")


def class_names(n_classes: int) -> list[str]:
    """The first `n_classes` shape names (folder names; labels follow sorted order)."""
    if not 2 <= n_classes <= len(shapes.CLS_SHAPES):
        raise UserError(f"n_classes must be in 2..{len(shapes.CLS_SHAPES)}, got {n_classes}")
    return list(shapes.CLS_SHAPES[:n_classes])


def draw_class_image(
    kind: str, size: int, rng: np.random.Generator, noise_std: float = 6.0
) -> np.ndarray:
    """One (size, size, 3) uint8 image of shape `kind` at a random place, scale and angle."""
    big = size * SUPERSAMPLE
    r = rng.uniform(0.22, 0.38) * big
    margin = r * 1.05
    cx, cy = rng.uniform(margin, big - margin, size=2)
    if kind in ("vstripes", "hstripes"):
        angle = np.deg2rad(rng.uniform(-15.0, 15.0))  # keep vertical vs horizontal distinct
    else:
        angle = rng.uniform(0.0, 2 * np.pi)
    u, v = shapes.frame_coords(big, big, cx, cy, angle)
    period = r * rng.uniform(0.25, 0.35)
    alpha = shapes.downsample(shapes.cls_shape_mask(kind, u, v, r, period), SUPERSAMPLE)
    bg, fg = shapes.contrasting_colours(rng)
    img = np.broadcast_to(bg, (size, size, 3)).astype(np.float64)
    return shapes.finish(shapes.composite(img, fg, alpha), rng, noise_std)


def _png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _corrupt_bytes(kind: str, rng: np.random.Generator, size: int) -> bytes:
    if kind == "empty":
        return b""
    if kind == "text":
        return b"this is a text file with an image extension\n"
    if kind == "truncated-header":
        return _png_bytes(draw_class_image("circle", size, rng))[:40]
    if kind == "truncated-tail":  # header intact, pixel stream cut: bad (data check: partial)
        buf = io.BytesIO()
        Image.fromarray(draw_class_image("square", size, rng)).save(buf, format="JPEG")
        data = buf.getvalue()
        scan = data.index(b"\xff\xda")  # start of scan: keep the headers, cut the pixels
        return data[: scan + (len(data) - scan) // 2]
    raise ValueError(f"unknown corruption {kind!r}")


def make_classification_set(
    out: str | os.PathLike,
    *,
    n_classes: int = 8,
    train_per_class: int = 64,
    val_per_class: int = 16,
    size: int = 64,
    seed: int = 0,
    corrupt: int = 0,
    noise_std: float = 6.0,
) -> Path:
    """Write `out/{train,val}/CLASS/*.png` plus `out/train.txt`, `out/val.txt` list files.

    List lines are `train/CLASS/NAME.png LABEL` (relative to `out`, labels = sorted class
    index, as ImageFolderDataset assigns them). `corrupt` adds that many broken files
    (empty, text, truncated header, truncated tail) to train/ and train.txt, to exercise
    robust decoding. Returns `out`.
    """
    if size < 16 or train_per_class < 1 or val_per_class < 0 or corrupt < 0:
        raise UserError("need size >= 16, train_per_class >= 1, val_per_class >= 0, corrupt >= 0")
    names = class_names(n_classes)
    labels = {name: i for i, name in enumerate(sorted(names))}
    out = Path(out).expanduser()
    with staged_dir(out) as stage:
        for stream, (split, count) in enumerate(
            (("train", train_per_class), ("val", val_per_class))
        ):
            lines = []
            for name in sorted(names):
                folder = stage / split / name
                folder.mkdir(parents=True)
                for i in range(count):
                    rng = np.random.default_rng([seed, stream, labels[name], i])
                    arr = draw_class_image(name, size, rng, noise_std)
                    (folder / f"{name}_{i:05d}.png").write_bytes(_png_bytes(arr))
                    lines.append(f"{split}/{name}/{name}_{i:05d}.png {labels[name]}")
            if split == "train":
                for j in range(corrupt):
                    kind = CORRUPT_KINDS[j % len(CORRUPT_KINDS)]
                    name = sorted(names)[j % len(names)]
                    rng = np.random.default_rng([seed, 99, j])
                    rel = f"train/{name}/corrupt_{j:03d}_{kind}.png"
                    (stage / rel).write_bytes(_corrupt_bytes(kind, rng, size))
                    lines.append(f"{rel} {labels[name]}")
            (stage / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return out


def make_voc_set(
    out: str | os.PathLike,
    *,
    n_train: int = 80,
    n_val: int = 80,
    n_test: int = 120,
    size: int = 128,
    seed: int = 0,
) -> Path:
    """Write `out/VOCdevkit/VOC2007` and `VOC2012` synthetic devkit trees (see synthetic_voc)."""

    return write_voc_set(out, n_train=n_train, n_val=n_val, n_test=n_test, size=size, seed=seed)
