"""Validate a dataset tree before a long run: counts per class/split and every problem found.

`check_tree(root, fmt)` returns a `CheckReport` (pure data); `dcbench data check` prints it.
Problems are things that would make a run wrong or lossy (missing folders, empty classes,
undecodable or truncated images, malformed list lines, XML without objects, masks whose size
differs from their image, VOC labels outside {1, 0, -1}); notes are informational.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dcbench.data.decode import decode_image, is_image_file
from dcbench.errors import UserError

FORMATS: tuple[str, ...] = ("imagenet", "places", "voc")


@dataclass
class CheckReport:
    """Counts (`lines`), informational `notes`, and `problems` found in a dataset tree."""

    root: Path
    fmt: str
    lines: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def format(self) -> str:
        """Human-readable report: counts, notes, then every problem."""
        out = [f"dataset {self.root} (format {self.fmt})", *self.lines]
        out += [f"note: {n}" for n in self.notes]
        if self.problems:
            out.append(f"{len(self.problems)} problem(s):")
            out += [f"  - {p}" for p in self.problems]
        else:
            out.append("no problems found")
        return "\n".join(out)


def _decode_problems(paths: Sequence[str], sample: int, workers: int) -> list[str]:
    """Decode `paths` (or `sample` evenly spaced ones when sample > 0) and list failures."""
    if sample and len(paths) > sample:
        picks = np.linspace(0, len(paths) - 1, sample).round().astype(int)
        paths = [paths[i] for i in sorted(set(picks.tolist()))]

    def one(path: str) -> str | None:
        result = decode_image(path)
        if result.image is None:
            return f"{path}: undecodable ({result.problem})"
        if result.partial:
            return f"{path}: truncated (only partly decodable)"
        return None

    with ThreadPoolExecutor(max(1, workers)) as pool:
        return [p for p in pool.map(one, paths) if p is not None]


def _scan(folder: Path) -> tuple[list[str], list[str], list[str]]:
    """(subfolders, image files, other files) directly in `folder`, sorted."""
    dirs, images, other = [], [], []
    with os.scandir(folder) as entries:
        for e in entries:
            if e.name.startswith("."):
                continue
            if e.is_dir():
                dirs.append(e.name)
            elif is_image_file(e.name):
                images.append(e.name)
            else:
                other.append(e.name)
    return sorted(dirs), sorted(images), sorted(other)


def check_imagenet(report: CheckReport, sample: int, workers: int) -> None:
    """ImageNet-style `ROOT/{train,val}/CLASS/*` (or ROOT itself as one split)."""
    root = report.root
    splits = [s for s in ("train", "val") if (root / s).is_dir()]
    if not splits:
        report.notes.append("no train/ or val/ folder: checking the folder itself as one split")
        splits = ["."]
    elif "train" not in splits:
        report.problems.append(f"missing folder {root / 'train'}")
    class_sets = {}
    for split in splits:
        folder = root / split
        classes, loose, other = _scan(folder)
        paths: list[str] = []
        if classes:
            counts = {}
            for cls in classes:
                _, images, _ = _scan(folder / cls)
                counts[cls] = len(images)
                paths += [str(folder / cls / f) for f in images]
                if not images:
                    report.problems.append(f"{folder / cls}: empty class folder (no images)")
            class_sets[split] = set(classes)
            report.lines.append(f"{split}: {len(paths)} images in {len(classes)} classes")
            report.lines += [f"  {cls}: {n}" for cls, n in counts.items()]
            if loose:
                report.problems.append(
                    f"{folder}: {len(loose)} image(s) outside class folders "
                    f"are ignored (e.g. {loose[0]})"
                )
        else:
            paths = [str(folder / f) for f in loose]
            report.lines.append(f"{split}: {len(paths)} unlabelled images (no class folders)")
            if not paths:
                report.problems.append(f"{folder}: no images and no class folders")
        if other:
            report.notes.append(f"{folder}: {len(other)} non-image file(s) ignored")
        report.problems += _decode_problems(paths, sample, workers)
    if len(class_sets) == 2 and class_sets["train"] != class_sets["val"]:
        diff = sorted(class_sets["train"] ^ class_sets["val"])
        report.problems.append(
            f"train/ and val/ class folders differ ({len(diff)}: {', '.join(diff[:5])})"
        )


def check_places(report: CheckReport, sample: int, workers: int) -> None:
    """Places205-style list files (`relative/path label` lines) for train and val."""
    from dcbench.data.folders import _list_image_root, list_file_candidates, parse_list_line

    found = False
    for split in ("train", "val"):
        lst = next((p for p in list_file_candidates(report.root, split) if p.is_file()), None)
        if lst is None:
            tried = ", ".join(p.name for p in list_file_candidates(report.root, split))
            report.problems.append(f"no list file for split {split!r} (tried {tried})")
            continue
        found = True
        image_root = _list_image_root(report.root, lst)
        labels: Counter[int] = Counter()
        paths = []
        for number, line in enumerate(lst.read_text(errors="replace").splitlines(), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            parsed = parse_list_line(line)
            if parsed is None or parsed[1] < 0:
                report.problems.append(
                    f"{lst}:{number}: bad line {line.strip()[:60]!r} "
                    "(expected `relative/path label`, label >= 0)"
                )
                continue
            path = image_root / parsed[0]
            if not path.is_file():
                report.problems.append(f"{lst}:{number}: missing file {path}")
                continue
            labels[parsed[1]] += 1
            paths.append(str(path))
        report.lines.append(
            f"{split} ({lst.name}, images under {image_root}): {len(paths)} "
            f"images in {len(labels)} labels"
        )
        report.lines += [f"  label {k}: {labels[k]}" for k in sorted(labels)]
        if labels:
            empty = sorted(set(range(max(labels) + 1)) - set(labels))
            if empty:
                report.problems.append(f"{lst}: labels with no images: {empty[:20]}")
        report.problems += _decode_problems(paths, sample, workers)
    if not found:
        report.notes.append(
            "expected ROOT/train.txt (or train.csv, trainvalsplit_places205/train_places205.csv)"
        )


def check_tree(
    root: str | os.PathLike, fmt: str, *, sample: int = 0, workers: int = 1
) -> CheckReport:
    """Check the dataset at `root` in format `imagenet`, `places` or `voc`."""
    if fmt not in FORMATS:
        raise UserError(f"unknown data format {fmt!r}; valid: {', '.join(FORMATS)}")
    base = Path(root).expanduser()
    if not base.is_dir():
        raise UserError(f"dataset folder not found: {base}")
    report = CheckReport(base, fmt)
    checkers: dict[str, Callable[[CheckReport, int, int], None]] = {
        "imagenet": check_imagenet,
        "places": check_places,
    }
    if fmt == "voc":
        from dcbench.data.voc_check import check_voc

        check_voc(report, sample, workers)
    else:
        checkers[fmt](report, sample, workers)
    return report
