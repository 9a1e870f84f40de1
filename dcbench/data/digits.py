"""Real images in the box: scikit-learn's 1,797 handwritten digits as an ImageFolder.

`sklearn.datasets.load_digits` ships 8x8 greyscale scans (16 grey levels) of digits written
by 43 people (UCI "Optical Recognition of Handwritten Digits"). They are written as RGB PNGs
upscaled to `size` px (bicubic, ink white on black as in the source), split train/val
stratified by class with a seeded shuffle, in the same layout as the synthetic set:
`out/{train,val}/DIGIT/*.png` plus `train.txt` / `val.txt` list files.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from dcbench.core.errors import UserError
from dcbench.core.files import staged_dir

N_DIGITS = 1797


def digit_image(pixels: np.ndarray, size: int) -> Image.Image:
    """One 8x8 digit (values 0..16) as an RGB image of `size` px."""
    grey = np.clip(np.asarray(pixels, dtype=np.float64).reshape(8, 8) * 255.0 / 16.0, 0, 255)
    small = Image.fromarray(grey.round().astype(np.uint8))  # 2-D uint8: mode L
    return small.resize((size, size), Image.Resampling.BICUBIC).convert("RGB")


def digit_split(val_fraction: float, seed: int,
                per_class: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, val indices) into load_digits(), stratified by class and seeded.

    `per_class` keeps only the first N images of each digit (in a seeded order) first.
    """
    labels = load_digits().target
    indices = np.arange(len(labels))
    if per_class is not None:
        order = np.random.default_rng(seed).permutation(len(labels))
        indices = np.sort(np.concatenate(
            [order[labels[order] == digit][:per_class] for digit in range(10)]))
    train, val = train_test_split(indices, test_size=val_fraction,
                                  stratify=labels[indices], random_state=seed)
    return np.sort(train), np.sort(val)


def make_digits_set(out: str | os.PathLike, *, size: int = 64, val_fraction: float = 0.25,
                    seed: int = 0, per_class: int | None = None) -> Path:
    """Write the digits ImageFolder at `out` (atomically) and return `out`."""
    if size < 8 or not 0.0 < val_fraction < 1.0:
        raise UserError(f"need size >= 8 and 0 < val_fraction < 1, got {size}, {val_fraction}")
    if per_class is not None and per_class < 4:
        raise UserError(f"--per-class must be at least 4 (train and val per digit), got "
                        f"{per_class}")
    n_images = 10 * per_class if per_class is not None else len(load_digits().target)
    n_val = math.ceil(val_fraction * n_images)  # sklearn's rounding of test_size
    if min(n_val, n_images - n_val) < 10:
        raise UserError(f"--val-fraction {val_fraction:g} leaves {n_images - n_val} train and "
                        f"{n_val} val images of {n_images}; each split needs one per digit")
    digits = load_digits()
    train, val = digit_split(val_fraction, seed, per_class)
    out = Path(out).expanduser()
    with staged_dir(out) as stage:
        for split, indices in (("train", train), ("val", val)):
            lines = []
            for index in indices:
                label = int(digits.target[index])
                rel = f"{split}/{label}/digit_{index:04d}.png"
                (stage / rel).parent.mkdir(parents=True, exist_ok=True)
                buffer = io.BytesIO()
                digit_image(digits.data[index], size).save(buffer, format="PNG")
                (stage / rel).write_bytes(buffer.getvalue())
                lines.append(f"{rel} {label}")
            (stage / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return out
