"""A tiny Oxford5k / Paris6k look-alike in the released layout, for tests and the smoke run.

Each landmark is a random patchwork "facade" pasted at a random place and scale onto
noisy gradient backgrounds; distractor images hold no landmark. Per landmark:
`queries_per_landmark` queries (box = the pasted facade), good = images showing the whole
facade large, ok = the rest of its images, junk = one image where it appears tiny.
Oxford: flat `jpg/`, query lines `oxc1_<image> x1 y1 x2 y2`; Paris: `jpg/<landmark>/`
tree, plain image names, plus one file named like a blacklisted corrupt image (garbage
bytes) so the skip path is exercised. Deterministic by seed.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from dcbench.core.errors import UserError
from dcbench.core.files import staged_dir

OXFORD_LANDMARKS = ("all_souls", "ashmolean", "balliol", "bodleian", "christ_church",
                    "cornmarket", "hertford", "keble", "magdalen", "pitt_rivers",
                    "radcliffe_camera")
PARIS_LANDMARKS = ("defense", "eiffel", "invalides", "louvre", "moulinrouge", "museedorsay",
                   "notredame", "pantheon", "pompidou", "sacrecoeur", "triomphe")


def _facade(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random patchwork of coloured blocks (the landmark's look), uint8 (size, size, 3)."""
    cells = int(rng.integers(3, 6))
    grid = rng.integers(0, 256, size=(cells, cells, 3)).astype(np.uint8)
    return np.asarray(Image.fromarray(grid).resize((size, size), Image.NEAREST))


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    top, bottom = rng.uniform(40, 215, size=(2, 3))
    ramp = np.linspace(0.0, 1.0, height)[:, None, None]
    img = top * (1 - ramp) + bottom * ramp + rng.normal(0, 12, size=(height, width, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _paste(rng: np.random.Generator, canvas: np.ndarray, facade: np.ndarray, scale: float
           ) -> tuple[int, int, int, int]:
    height, width = canvas.shape[:2]
    side = max(4, int(scale * min(height, width)))
    patch = np.asarray(Image.fromarray(facade).resize((side, side), Image.BILINEAR))
    x = int(rng.integers(0, width - side + 1))
    y = int(rng.integers(0, height - side + 1))
    canvas[y:y + side, x:x + side] = patch
    return x, y, x + side, y + side


def _write_dataset(folder: Path, prefix: str, landmarks: tuple[str, ...], *, nested: bool,
                   oxc1: bool, per_landmark: int, queries_per_landmark: int,
                   distractors: int, size: int, rng: np.random.Generator) -> None:
    jpg, gt = folder / "jpg", folder / "gt_files"
    gt.mkdir(parents=True)
    counter = 0

    def save(landmark: str, image: np.ndarray) -> str:
        nonlocal counter
        counter += 1
        name = f"{prefix}{landmark}_{counter:06d}"
        out = jpg / landmark if nested else jpg
        out.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(out / f"{name}.jpg", quality=92)
        return name

    for landmark in landmarks:
        facade = _facade(rng, 64)
        shown: list[tuple[str, tuple[int, int, int, int]]] = []
        for _ in range(per_landmark):
            canvas = _background(rng, int(size * rng.uniform(0.75, 1.0)), size)
            box = _paste(rng, canvas, facade, float(rng.uniform(0.45, 0.7)))
            shown.append((save(landmark, canvas), box))
        canvas = _background(rng, size, int(size * 0.8))
        _paste(rng, canvas, facade, 0.12)
        junk = save(landmark, canvas)
        half = max(1, len(shown) // 2)
        good, ok = [n for n, _ in shown[:half]], [n for n, _ in shown[half:]]
        for q in range(queries_per_landmark):
            name, box = shown[q % len(shown)]
            query = f"{landmark}_{q + 1}"
            image = f"oxc1_{name}" if oxc1 else name
            (gt / f"{query}_query.txt").write_text(
                f"{image} {box[0]:.1f} {box[1]:.1f} {box[2]:.1f} {box[3]:.1f}\n")
            (gt / f"{query}_good.txt").write_text("".join(f"{n}\n" for n in good))
            (gt / f"{query}_ok.txt").write_text("".join(f"{n}\n" for n in ok))
            (gt / f"{query}_junk.txt").write_text(f"{junk}\n")
    for _ in range(distractors):
        save(landmarks[int(rng.integers(len(landmarks)))] + "_other",
             _background(rng, size, int(size * rng.uniform(0.75, 1.0))))


def write_retrieval_set(out: str | os.PathLike, *, landmarks: int = 3, per_landmark: int = 4,
                        queries_per_landmark: int = 2, distractors: int = 6, size: int = 160,
                        seed: int = 0) -> Path:
    """Write `out/oxford5k` and `out/paris6k` in the released layout. Returns `out`."""
    if not 1 <= landmarks <= len(OXFORD_LANDMARKS) or per_landmark < 2 or size < 48:
        raise UserError(f"need 1 <= landmarks <= {len(OXFORD_LANDMARKS)}, per_landmark >= 2 "
                        "and size >= 48")
    if not 1 <= queries_per_landmark <= per_landmark or distractors < 0:
        raise UserError("need 1 <= queries_per_landmark <= per_landmark and distractors >= 0")
    out = Path(out).expanduser()
    rng = np.random.default_rng(seed)
    common = dict(per_landmark=per_landmark, queries_per_landmark=queries_per_landmark,
                  distractors=distractors, size=size, rng=rng)
    with staged_dir(out) as stage:
        _write_dataset(stage / "oxford5k", "", OXFORD_LANDMARKS[:landmarks], nested=False,
                       oxc1=True, **common)
        _write_dataset(stage / "paris6k", "paris_", PARIS_LANDMARKS[:landmarks], nested=True,
                       oxc1=False, **common)
        corrupt = stage / "paris6k" / "jpg" / "louvre" / "paris_louvre_000136.jpg"
        corrupt.parent.mkdir(parents=True, exist_ok=True)
        corrupt.write_bytes(b"\xff\xd8 not a jpeg")
    return out
