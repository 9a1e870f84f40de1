"""Oxford5k / Paris6k instance-retrieval sets in their released layout (Philbin et al.).

A dataset folder holds the images under `jpg/` (flat, or Paris's `jpg/<landmark>/` tree)
and the ground truth under `gt_files/` (or `lab/`, the name the DeepCluster and
deep_retrieval scripts use). Each query `Q` has four files:
`Q_query.txt` (one line `oxc1_<image> x1 y1 x2 y2`; Paris lines have no `oxc1_` prefix),
`Q_good.txt`, `Q_ok.txt`, `Q_junk.txt` (one image name per line). Good + ok are the
positives, junk is ignored when scoring. The database is every image, sorted by name,
minus the 20 Paris images known to be corrupt (the blacklist of the official script),
which are skipped and reported.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from dcbench.core.errors import UserError
from dcbench.data.crop_plan import Draws, Unexpressible, View
from dcbench.data.decode import is_image_file, open_image

GT_FOLDERS = ("gt_files", "lab", "gt")
# The Paris6k images that are corrupt in the released archive (skipped by convention).
PARIS_BLACKLIST = frozenset({
    "paris_louvre_000136", "paris_louvre_000146", "paris_moulinrouge_000422",
    "paris_museedorsay_001059", "paris_notredame_000188", "paris_pantheon_000284",
    "paris_pantheon_000960", "paris_pantheon_000974", "paris_pompidou_000195",
    "paris_pompidou_000196", "paris_pompidou_000201", "paris_pompidou_000467",
    "paris_pompidou_000640", "paris_sacrecoeur_000299", "paris_sacrecoeur_000330",
    "paris_sacrecoeur_000353", "paris_triomphe_000662", "paris_triomphe_000833",
    "paris_triomphe_000863", "paris_triomphe_000867",
})
LAYOUT = """expected layout:
  DIR/jpg/<image>.jpg              (or DIR/jpg/<landmark>/<image>.jpg)
  DIR/gt_files/<query>_query.txt   one line: [oxc1_]<image> x1 y1 x2 y2
  DIR/gt_files/<query>_{good,ok,junk}.txt   one image name per line"""


@dataclasses.dataclass(frozen=True)
class Query:
    """One query: its name, image, box (x1, y1, x2, y2) and ground truth."""

    name: str
    image: str
    box: tuple[float, float, float, float]
    positives: frozenset[str]  # good + ok
    junk: frozenset[str]


def _names(path: Path) -> list[str]:
    if not path.is_file():
        raise UserError(f"retrieval ground-truth file not found: {path}", detail=LAYOUT)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise UserError(f"retrieval ground-truth file {path} is not UTF-8 text "
                        f"(byte {err.start})", detail=LAYOUT) from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def read_query(gt_dir: Path, name: str) -> Query:
    """Parse `name`'s four ground-truth files (UserError on a malformed query line)."""
    line = _names(gt_dir / f"{name}_query.txt")
    parts = line[0].split() if line else []
    if len(parts) != 5:
        raise UserError(f"{gt_dir / (name + '_query.txt')}: expected '<image> x1 y1 x2 y2', "
                        f"got {line[0] if line else 'an empty file'!r}", detail=LAYOUT)
    try:
        box = tuple(float(v) for v in parts[1:])
    except ValueError:
        raise UserError(f"{gt_dir / (name + '_query.txt')}: the box is not numeric") from None
    if not all(math.isfinite(v) for v in box):
        raise UserError(f"{gt_dir / (name + '_query.txt')}: the box {parts[1:]} is not four "
                        "finite numbers")
    image = parts[0].removeprefix("oxc1_")
    good = set(_names(gt_dir / f"{name}_good.txt")) | set(_names(gt_dir / f"{name}_ok.txt"))
    return Query(name, image, box, frozenset(good), frozenset(_names(gt_dir / f"{name}_junk.txt")))


class RetrievalSet:
    """The database images and queries of one Oxford/Paris-layout folder."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).expanduser()
        jpg = self.root / "jpg"
        gt_dir = next((self.root / g for g in GT_FOLDERS if (self.root / g).is_dir()), None)
        if not jpg.is_dir() or gt_dir is None:
            raise UserError(f"{self.root} is not an Oxford/Paris retrieval folder", detail=LAYOUT)
        paths = {}
        for path in sorted(jpg.rglob("*")):
            if path.is_file() and is_image_file(path.name):
                paths.setdefault(path.stem, path)
        self.blacklisted = sorted(n for n in paths if n in PARIS_BLACKLIST)
        self.names = sorted(n for n in paths if n not in PARIS_BLACKLIST)
        self.paths = [paths[n] for n in self.names]
        query_files = sorted(gt_dir.glob("*_query.txt"))
        if not query_files:
            raise UserError(f"no *_query.txt file in {gt_dir}", detail=LAYOUT)
        self.queries = [read_query(gt_dir, f.name[: -len("_query.txt")]) for f in query_files]
        known = set(self.names)
        missing = [q.image for q in self.queries if q.image not in known]
        if missing:
            raise UserError(f"{self.root}: query images not in jpg/: {', '.join(missing[:5])}",
                            detail=LAYOUT)
        self.query_paths = [paths[q.image] for q in self.queries]


def resize_longest(image: Image.Image, size: int) -> tuple[Image.Image, float]:
    """Resize so the longest side is `size` (PIL bilinear, as the official script); the ratio."""
    width, height = image.size
    ratio = size / max(width, height)
    new = (max(1, round(width * ratio)), max(1, round(height * ratio)))
    return image.resize(new, Image.BILINEAR), ratio


def crop_box(box: tuple[float, float, float, float], ratio: float) -> tuple[int, int, int, int]:
    """The query box (x1, y1, x2, y2) in resized-image pixels, rounded (official script)."""
    x1, y1, x2, y2 = (int(np.round(v * ratio)) for v in box)
    return x1, y1, x2, y2


def clipped_box(box: tuple[float, float, float, float], ratio: float, width: int,
                height: int) -> tuple[int, int, int, int]:
    """The query box (x1, y1, x2, y2) in a resized `width` x `height` image, clipped like
    tensor slicing does (no padding; at least one pixel)."""
    x1, y1, x2, y2 = crop_box(box, ratio)
    x1, y1 = min(max(x1, 0), width - 1), min(max(y1, 0), height - 1)
    x2, y2 = min(max(x2, x1 + 1), width), min(max(y2, y1 + 1), height)
    return x1, y1, x2, y2


class RetrievalImages(Dataset):
    """Items (tensor | None, 0, index): images resized to longest side `size`, boxes cropped.

    `boxes[i]` (or None) crops item i after resizing, like the official query features.
    `min_side` upsizes crops smaller than the network accepts (never needed at 1024 px).
    `draws(i, h, w)` is that geometry without the pixels, for the DALI input pipeline.
    """

    def __init__(self, paths: list[Path], size: int, transform: Callable[[Any], Any],
                 boxes: list[tuple[float, float, float, float] | None] | None = None,
                 min_side: int = 1) -> None:
        self.samples = [(str(p), 0) for p in paths]
        self.size, self.transform, self.min_side = size, transform, min_side
        self.boxes = boxes or [None] * len(paths)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, int, int]:
        image = open_image(self.samples[index][0])
        if image is None:
            return None, 0, index
        image, ratio = resize_longest(image, self.size)
        box = self.boxes[index]
        if box is not None:
            image = image.crop(clipped_box(box, ratio, *image.size))
        short = min(image.size)
        if short < self.min_side:
            scale = self.min_side / short
            image = image.resize((max(self.min_side, round(image.size[0] * scale)),
                                  max(self.min_side, round(image.size[1] * scale))),
                                 Image.BILINEAR)
        return self.transform(image), 0, index

    def draws(self, index: int, height: int, width: int) -> Draws:
        """Item `index`'s geometry for a (EXIF-oriented) `height` x `width` image, as
        `__getitem__` computes it: the whole image resized so its longest side is `size`
        (sizes rounded as `resize_longest` rounds them), then the query box as the one view.
        A crop that `min_side` would upsize again (a second resampling) is `Unexpressible`."""
        ratio = self.size / max(width, height)
        new_w, new_h = max(1, round(width * ratio)), max(1, round(height * ratio))
        top, left, view_h, view_w = 0, 0, new_h, new_w
        box = self.boxes[index]
        if box is not None:
            x1, y1, x2, y2 = clipped_box(box, ratio, new_w, new_h)
            top, left, view_h, view_w = y1, x1, y2 - y1, x2 - x1
        if min(view_h, view_w) < self.min_side:
            raise Unexpressible(f"a {view_h}x{view_w} crop upsized to {self.min_side} px")
        resize = None if (new_h, new_w) == (height, width) else (new_h, new_w)
        return Draws((0, 0, height, width), resize, (View(top, left, view_h, view_w, False),))
