"""Validate a dataset tree before a long run: counts per class/split and every problem found.

`check_tree(root, fmt)` returns a `CheckReport` (pure data); `dcbench data check` prints it.
Problems are things that would make a run wrong or lossy (missing folders, empty classes,
undecodable or truncated images, malformed list lines, XML without objects, masks whose size
differs from their image, VOC labels outside {1, 0, -1}); notes are informational.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from dcbench.core.errors import UserError
from dcbench.data.check_report import CheckReport, decode_problems
from dcbench.data.folders import (
    _list_image_root,
    list_file_candidates,
    parse_list_line,
    scan_folder,
)
from dcbench.data.labelled_splits import open_labelled_splits
from dcbench.data.voc_check import check_voc

FORMATS: tuple[str, ...] = ("imagenet", "places", "voc")


def _scan(folder: Path, report: CheckReport) -> tuple[list[str], list[str], list[str]]:
    """(subfolders, image files, other files) directly in `folder`, sorted; skipped entries
    (symlink loops, dangling links, folders named like images) become problems."""
    listing = scan_folder(folder)
    report.problems += listing.problems
    return listing.dirs, listing.images, listing.other


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
        classes, loose, other = _scan(folder, report)
        paths: list[str] = []
        if classes:
            counts = {}
            for cls in classes:
                _, images, _ = _scan(folder / cls, report)
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
        report.problems += decode_problems(paths, sample, workers)
    if len(class_sets) == 2 and class_sets["train"] != class_sets["val"]:
        diff = sorted(class_sets["train"] ^ class_sets["val"])
        report.problems.append(
            f"train/ and val/ class folders differ ({len(diff)}: {', '.join(diff[:5])})"
        )


def check_places(report: CheckReport, sample: int, workers: int) -> None:
    """Places205-style list files (`relative/path label` lines) for train and val."""

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
        text = lst.read_text(encoding="utf-8-sig", errors="replace")  # -sig: a BOM is dropped
        for number, line in enumerate(text.splitlines(), start=1):
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
        report.problems += decode_problems(paths, sample, workers)
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

        check_voc(report, sample, workers)
    else:
        checkers[fmt](report, sample, workers)
        check_eval_reads(report)
    return report


def check_eval_reads(report: CheckReport) -> None:
    """Run the check `dcbench eval` itself runs on a classification benchmark (train + val,
    labelled, same classes), unless the tree is a bare training folder or already failed."""
    root = report.root
    benchmark = ((root / "train").is_dir() or (root / "val").is_dir() if report.fmt == "imagenet"
                 else any(p.is_file() for s in ("train", "val")
                          for p in list_file_candidates(root, s)))
    if not benchmark:
        report.notes.append("a training folder (no train/ or val/): `dcbench train` reads it; "
                            "`dcbench eval` needs ROOT/train + ROOT/val")
        return
    if report.problems:
        return
    try:
        open_labelled_splits(root, "val")
    except UserError as err:
        report.problems.append(f"dcbench eval would refuse this tree: {err}")
        return
    report.notes.append("train + val read as `dcbench eval` reads them (linear-conv, mlp, "
                        "low-shot, knn): labelled, same classes")
