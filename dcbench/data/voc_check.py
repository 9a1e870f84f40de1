"""Consistency checks for a VOC devkit (used by `dcbench data check --format voc`)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from dcbench.core.errors import UserError
from dcbench.data.check_report import CheckReport, decode_problems
from dcbench.data.voc import IGNORE_INDEX, VOC_CLASSES, find_voc, read_annotation, read_mask

VALID_MASK_VALUES = frozenset([*range(len(VOC_CLASSES) + 1), IGNORE_INDEX])


def _split_lists(folder: Path) -> dict[str, list[str]]:
    main = folder / "ImageSets" / "Main"
    lists = {}
    for path in sorted(main.glob("*.txt")) if main.is_dir() else []:
        if "_" not in path.stem:  # {split}.txt, not {cls}_{split}.txt
            text = path.read_text(encoding="utf-8-sig")  # -sig: a BOM is dropped
            lists[path.stem] = [ln.split()[0] for ln in text.splitlines() if ln.strip()]
    return lists


def _check_class_files(report: CheckReport, folder: Path, split: str, ids: list[str]) -> None:
    known = set(ids)
    positives: Counter[str] = Counter()
    for cls in VOC_CLASSES:
        path = folder / "ImageSets" / "Main" / f"{cls}_{split}.txt"
        if not path.is_file():
            report.problems.append(f"missing class list {path}")
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or parts[1] not in ("1", "0", "-1"):
                report.problems.append(f"{path}:{number}: label must be 1, 0 or -1: {line!r}")
            elif parts[0] not in known:
                report.problems.append(f"{path}:{number}: id {parts[0]} not in {split}.txt")
            elif parts[1] == "1":
                positives[cls] += 1
    report.lines.append(
        f"  {split}: {len(ids)} images; positives per class: "
        + ", ".join(f"{c}={positives[c]}" for c in VOC_CLASSES)
    )


def _check_annotation(report: CheckReport, folder: Path, image_id: str) -> None:
    xml = folder / "Annotations" / f"{image_id}.xml"
    if not xml.is_file():
        report.problems.append(f"missing annotation {xml}")
        return
    try:
        ann = read_annotation(xml)
    except UserError as err:
        report.problems.append(str(err))
        return
    image = folder / "JPEGImages" / f"{image_id}.jpg"
    try:
        with Image.open(image) as img:
            if img.size != (ann["width"], ann["height"]):
                report.problems.append(
                    f"{xml}: size {ann['width']}x{ann['height']} differs "
                    f"from image size {img.size[0]}x{img.size[1]}"
                )
    except OSError:
        pass  # missing or undecodable images are reported by the image pass
    if not ann["objects"]:
        report.problems.append(f"{xml}: no <object> in annotation")
    for obj in ann["objects"]:
        xmin, ymin, xmax, ymax = obj["bbox"]
        if obj["name"] not in VOC_CLASSES:
            report.problems.append(f"{xml}: unknown class name {obj['name']!r}")
        if not (
            1 <= xmin <= xmax <= max(ann["width"], 1) and 1 <= ymin <= ymax <= max(ann["height"], 1)
        ):
            report.problems.append(
                f"{xml}: bbox {obj['bbox']} outside the {ann['width']}x{ann['height']} image"
            )


def _check_masks(report: CheckReport, folder: Path) -> None:
    seg_lists = folder / "ImageSets" / "Segmentation"
    all_ids: set[str] = set()
    for path in sorted(seg_lists.glob("*.txt")) if seg_lists.is_dir() else []:
        text = path.read_text(encoding="utf-8-sig")
        ids = [ln.split()[0] for ln in text.splitlines() if ln.strip()]
        report.lines.append(f"  segmentation {path.stem}: {len(ids)} images")
        all_ids.update(ids)
    for image_id in sorted(all_ids):
        mask_path = folder / "SegmentationClass" / f"{image_id}.png"
        image_path = folder / "JPEGImages" / f"{image_id}.jpg"
        if not mask_path.is_file():
            report.problems.append(f"missing mask {mask_path}")
            continue
        try:
            mask = read_mask(mask_path)
            with Image.open(image_path) as img:
                size = img.size
        except OSError as err:
            report.problems.append(f"{mask_path}: cannot read mask or image ({err})")
            continue
        if (mask.shape[1], mask.shape[0]) != size:
            report.problems.append(
                f"{mask_path}: mask size {mask.shape[1]}x{mask.shape[0]}"
                f" differs from image size {size[0]}x{size[1]}"
            )
        bad = sorted(set(np.unique(mask).tolist()) - VALID_MASK_VALUES)
        if bad:
            report.problems.append(f"{mask_path}: mask values outside 0..20/255: {bad[:10]}")


def check_voc(report: CheckReport, sample: int, workers: int) -> None:
    """VOC2007 and/or VOC2012 under the root: lists, labels, XML, images and masks."""
    years = []
    for year in ("2007", "2012"):
        try:
            years.append((year, find_voc(report.root, year)))
        except UserError:
            continue
    if not years:
        report.problems.append(
            f"no VOC2007 or VOC2012 folder under {report.root} "
            "(expected VOCdevkit/VOC2007/{Annotations,ImageSets,JPEGImages})"
        )
        return
    for year, folder in years:
        lists = _split_lists(folder)
        report.lines.append(f"VOC{year} ({folder}): splits {', '.join(lists) or 'none'}")
        if not lists:
            report.problems.append(f"{folder / 'ImageSets' / 'Main'}: no split lists")
        all_ids = sorted({i for ids in lists.values() for i in ids})
        for split, ids in lists.items():
            _check_class_files(report, folder, split, ids)
        paths = []
        for image_id in all_ids:
            image = folder / "JPEGImages" / f"{image_id}.jpg"
            if image.is_file():
                paths.append(str(image))
            else:
                report.problems.append(f"missing image {image}")
            _check_annotation(report, folder, image_id)
        report.problems += decode_problems(paths, sample, workers)
        _check_masks(report, folder)
