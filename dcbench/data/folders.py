"""Image datasets read from folders (ImageNet style) or list files (Places205 style).

Listing uses `os.scandir` only (no image is opened until `__getitem__`), in sorted order, so
the sample order, and hence cluster assignments and feature caches, are the same on every
machine. A file that cannot be decoded yields `None` instead of raising; `make_loader`
drops it from the batch and reports its index (see `dcbench.data.loader`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from dcbench.core.errors import UserError
from dcbench.data.decode import decode_image, is_image_file, open_image
from dcbench.data.loader import Batch, DecodeReport, collate_skip_bad, make_loader
from dcbench.data.transforms import to_float_tensor

__all__ = [
    "Batch",
    "DecodeReport",
    "ImageFolderDataset",
    "ListFileDataset",
    "collate_skip_bad",
    "decode_image",
    "find_dataset",
    "list_file_candidates",
    "make_loader",
    "open_image",
]

Transform = Callable[[Any], Any]
log = logging.getLogger(__name__)
_WARNED: set[str] = set()

IMAGEFOLDER_LAYOUT = """expected layout (ImageNet style, one folder per class):
  ROOT/train/n01440764/n01440764_10026.JPEG
  ROOT/train/n01443537/...
  ROOT/val/n01440764/ILSVRC2012_val_00000293.JPEG
or a flat folder of unlabelled images (label -1):  ROOT/train/img0001.jpg
or a Places205-style list file of `relative/path label` lines:
  ROOT/train.txt (or train.csv, trainvalsplit_places205/train_places205.csv)"""


def _default_transform(img: Any) -> Any:

    return to_float_tensor(img)


@dataclass
class Listing:
    """The entries directly in one folder, sorted; `problems` names each entry that is skipped
    although it looks like data (loops, dangling links, folders named like images)."""

    dirs: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def scan_folder(folder: str | os.PathLike) -> Listing:
    """List `folder` with `os.scandir` (no PIL), never raising on a hostile entry."""
    listing = Listing()
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = os.path.join(str(folder), entry.name)
            looks_like_image = is_image_file(entry.name)
            try:
                is_dir, is_file = entry.is_dir(), entry.is_file()
            except OSError as err:  # ELOOP: a symlink loop; EACCES
                listing.problems.append(f"{path}: skipped ({err.strerror or err})")
                continue
            if is_dir:
                listing.dirs.append(entry.name)
                if looks_like_image:
                    listing.problems.append(f"{path}: skipped (a folder named like an image)")
            elif is_file:
                (listing.images if looks_like_image else listing.other).append(entry.name)
            elif entry.is_symlink() and not os.path.exists(path):
                listing.problems.append(f"{path}: skipped (dangling symlink)")
            elif entry.is_symlink() or looks_like_image:  # a device, FIFO or socket
                target = f"a link to {os.path.realpath(path)}, " if entry.is_symlink() else ""
                listing.problems.append(f"{path}: skipped ({target}not a regular file)")
    for names in (listing.dirs, listing.images, listing.other):
        names.sort()
    return listing


def _report_listing(root: Path, problems: list[str], empty: list[str]) -> None:
    """One warning line for what the listing skipped (full list: `dcbench data check`)."""
    parts = []
    if empty:
        parts.append(f"{len(empty)} empty class folder(s) ({', '.join(empty[:5])})")
    if problems:
        parts.append(f"{len(problems)} entr{'y' if len(problems) == 1 else 'ies'} skipped "
                     f"(e.g. {problems[0]})")
    message = f"warning: {root}: {'; '.join(parts)}; see `dcbench data check`"
    if parts and message not in _WARNED:  # two datasets over one folder warn once
        _WARNED.add(message)
        log.warning("%s", message)


class _ImageDataset(Dataset):
    """Shared `__getitem__`: decode, transform, never raise on a bad file."""

    samples: list[tuple[str, int]]
    transform: Transform | None

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def targets(self) -> np.ndarray:
        """Labels as int64 (-1 for unlabelled images)."""
        return np.fromiter((s[1] for s in self.samples), dtype=np.int64, count=len(self.samples))

    @property
    def paths(self) -> list[str]:
        """File paths in dataset order."""
        return [s[0] for s in self.samples]

    def __getitem__(self, index: int) -> tuple[Any, int, int]:
        path, label = self.samples[index]
        img = open_image(path)
        if img is None:
            return None, label, index
        transform = self.transform or _default_transform
        return transform(img), label, index


class ImageFolderDataset(_ImageDataset):
    """`root/CLASS/*.JPEG` (labels = sorted class index) or a flat folder of images (label -1).

    Loose image files next to class folders are ignored (as in torchvision's ImageFolder);
    `dcbench data check` reports them.
    """

    def __init__(self, root: str | os.PathLike, transform: Transform | None = None) -> None:
        self.root = Path(root)
        self.transform = transform
        if not self.root.is_dir():
            raise UserError(f"image folder not found: {self.root}", detail=IMAGEFOLDER_LAYOUT)
        top = scan_folder(self.root)
        classes = top.dirs
        samples: list[tuple[str, int]] = []
        problems, empty = list(top.problems), []
        if classes:
            problems = [p for p in problems if "named like an image" not in p]  # classes
            for label, name in enumerate(classes):
                folder = os.path.join(str(self.root), name)
                inner = scan_folder(folder)
                problems += inner.problems
                if not inner.images:
                    empty.append(name)
                samples.extend((os.path.join(folder, f), label) for f in inner.images)
        else:
            samples = [(os.path.join(str(self.root), f), -1) for f in top.images]
        if not samples:
            raise UserError(f"no images found in {self.root}", detail=IMAGEFOLDER_LAYOUT)
        self.classes: list[str] = classes
        self.class_to_idx: dict[str, int] = {c: i for i, c in enumerate(classes)}
        self.samples = samples
        self.listing_problems: list[str] = problems
        self.empty_classes: list[str] = empty
        _report_listing(self.root, problems, empty)


def require_decodable(samples: Sequence[tuple[str, int]], root: str | os.PathLike) -> None:
    """Refuse a dataset in which no image decodes, before a run writes anything (a run would
    otherwise fail later on "0 images"). Decodes files in order and stops at the first good
    one, so a usable folder costs one decode."""
    for path, _ in samples:
        if open_image(path) is not None:
            return
    names = ", ".join(os.path.basename(p) for p, _ in samples[:3])
    raise UserError(f"no image in {root} could be decoded ({len(samples)} tried: {names}"
                    + (", ..." if len(samples) > 3 else "") + ")")


def parse_list_line(line: str) -> tuple[str, int] | None:
    """Parse one `relative/path label` line (path may hold spaces); `None` if malformed."""
    parts = line.strip().rsplit(None, 1)
    if len(parts) != 2:
        return None
    try:
        label = int(parts[1])
    except ValueError:
        return None
    return parts[0], label


class ListFileDataset(_ImageDataset):
    """Places205-style list: one `relative/path label` per line, paths relative to `root`."""

    def __init__(
        self,
        list_file: str | os.PathLike,
        root: str | os.PathLike,
        transform: Transform | None = None,
    ) -> None:
        self.list_file, self.root, self.transform = Path(list_file), Path(root), transform
        if not self.list_file.is_file():
            raise UserError(f"list file not found: {self.list_file}", detail=IMAGEFOLDER_LAYOUT)
        if not self.root.is_dir():
            raise UserError(f"image root for {self.list_file.name} not found: {self.root}")
        samples: list[tuple[str, int]] = []
        bad: list[int] = []
        text = self.list_file.read_text(encoding="utf-8-sig", errors="replace")
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            parsed = parse_list_line(line)
            if parsed is None or parsed[1] < 0:
                bad.append(number)
                continue
            samples.append((os.path.join(str(self.root), parsed[0]), parsed[1]))
        if bad:
            shown = ", ".join(map(str, bad[:10])) + (" ..." if len(bad) > 10 else "")
            raise UserError(
                f"{self.list_file}: {len(bad)} malformed line(s) (line {shown}); "
                "expected `relative/path label` with an integer label >= 0"
            )
        if not samples:
            raise UserError(
                f"list file {self.list_file} holds no samples", detail=IMAGEFOLDER_LAYOUT
            )
        self.samples = samples
        n_classes = max(s[1] for s in samples) + 1
        self.classes = [str(i) for i in range(n_classes)]


def list_file_candidates(root: Path, split: str) -> list[Path]:
    """Where a list file for `split` may live under `root`, in the order they are tried."""
    return [
        root / f"{split}.txt",
        root / f"{split}.csv",
        root / "trainvalsplit_places205" / f"{split}_places205.csv",
        root / f"{split}_places205.csv",
    ]


def _list_image_root(root: Path, list_file: Path) -> Path:
    """The folder that the list's relative paths start from (root, images256/ or images/)."""
    first = None
    for line in list_file.read_text(encoding="utf-8-sig", errors="replace").splitlines():
        parsed = parse_list_line(line)
        if parsed is not None:
            first = parsed[0]
            break
    candidates = [root, root / "images256", root / "images", list_file.parent]
    for candidate in candidates:
        if first is not None and (candidate / first).exists():
            return candidate
    return root


def find_dataset(
    root: str | os.PathLike, split: str, transform: Transform | None = None, *, fmt: str = "auto"
) -> ImageFolderDataset | ListFileDataset:
    """Resolve `root/split` as an image folder, or a list file for `split`, into a dataset.

    `fmt` is `auto`, `imagenet` (folders only) or `places` (list files only). A missing or
    empty split raises a UserError that prints the expected layout.
    """
    if fmt not in ("auto", "imagenet", "places"):
        raise UserError(f"unknown dataset format {fmt!r}; valid: auto, imagenet, places")
    base = Path(root).expanduser()
    if not base.is_dir():
        raise UserError(f"dataset root not found: {base}", detail=IMAGEFOLDER_LAYOUT)
    if fmt in ("auto", "imagenet") and (base / split).is_dir():
        return ImageFolderDataset(base / split, transform)
    if fmt in ("auto", "places"):
        for candidate in list_file_candidates(base, split):
            if candidate.is_file():
                return ListFileDataset(candidate, _list_image_root(base, candidate), transform)
    raise UserError(
        f"split {split!r} not found under {base} (format {fmt})", detail=IMAGEFOLDER_LAYOUT
    )
