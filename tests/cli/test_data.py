"""`dcbench data synth|check` through the real CLI entry point (exit codes, messages)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dcbench import cli


def data_cli(argv: list[str]) -> int:
    """The real entry point (it imports only the chosen subcommand's module)."""
    return cli.main(argv)


def test_synth_then_check_clean(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "synth"
    argv = [
        "data",
        "synth",
        "--out",
        str(out),
        "--size",
        "48",
        "--per-class",
        "2",
        "--val-per-class",
        "1",
        "--classes",
        "3",
        "--voc-images",
        "4",
        "3",
        "3",
    ]
    assert data_cli(argv) == 0
    assert (out / "cls" / "train.txt").is_file()
    assert (out / "voc" / "VOCdevkit" / "VOC2012" / "SegmentationClass").is_dir()
    for fmt, root in (("imagenet", "cls"), ("places", "cls"), ("voc", "voc")):
        capsys.readouterr()
        assert data_cli(["data", "check", "--data", str(out / root), "--format", fmt]) == 0
        assert "no problems found" in capsys.readouterr().out
    assert data_cli(argv) == 2  # refuses to overwrite
    assert "not empty" in capsys.readouterr().err


def test_check_reports_corrupt_images(cls_set: Path, capsys) -> None:
    assert data_cli(["data", "check", "--data", str(cls_set), "--format", "imagenet"]) == 2
    captured = capsys.readouterr()
    assert "4 problem(s)" in captured.out and "empty file (0 bytes)" in captured.out
    assert "truncated (only partly decodable)" in captured.out
    assert "train: 28 images in 4 classes" in captured.out
    assert "dcbench: error: 4 problem(s) found" in captured.err


def test_check_imagenet_structure_problems(tmp_path: Path, capsys) -> None:
    root = tmp_path / "ds"
    (root / "val" / "a").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(root / "val" / "a" / "1.png")
    (root / "val" / "b").mkdir()
    Image.new("RGB", (4, 4)).save(root / "val" / "loose.png")
    assert data_cli(["data", "check", "--data", str(root), "--format", "imagenet"]) == 2
    out = capsys.readouterr().out
    assert "missing folder" in out and "empty class folder" in out
    assert "outside class folders" in out
    assert data_cli(["data", "check", "--data", str(tmp_path / "nope"), "--format", "voc"]) == 2


def test_check_places_bad_lines(cls_set: Path, tmp_path: Path, capsys) -> None:
    root = tmp_path / "places"
    shutil.copytree(cls_set / "val", root / "val")
    (root / "train.txt").write_text("val/circle/circle_00000.png 0\nval/x.png 1\nbad line\n")
    assert data_cli(["data", "check", "--data", str(root), "--format", "places"]) == 2
    out = capsys.readouterr().out
    assert "train.txt:2: missing file" in out and "train.txt:3: bad line" in out
    assert "no list file for split 'val'" in out


def test_check_voc_problems(voc_set: Path, tmp_path: Path, capsys) -> None:
    root = tmp_path / "voc"
    shutil.copytree(voc_set, root)
    y07 = root / "VOCdevkit" / "VOC2007"
    cls_file = y07 / "ImageSets" / "Main" / "dog_train.txt"
    lines = cls_file.read_text().splitlines()
    lines[0] = lines[0].split()[0] + "  2"
    cls_file.write_text("\n".join(lines) + "\n")
    first = lines[1].split()[0]
    (y07 / "Annotations" / f"{first}.xml").write_text(
        "<annotation><filename>x.jpg</filename><size><width>5</width><height>5</height>"
        "</size></annotation>"
    )
    y12 = root / "VOCdevkit" / "VOC2012"
    mask_id = (y12 / "ImageSets" / "Segmentation" / "val.txt").read_text().split()[0]
    Image.fromarray(np.zeros((7, 9), dtype=np.uint8), mode="P").save(
        y12 / "SegmentationClass" / f"{mask_id}.png"
    )
    assert data_cli(["data", "check", "--data", str(root), "--format", "voc"]) == 2
    out = capsys.readouterr().out
    assert "dog_train.txt:1: label must be 1, 0 or -1" in out
    assert f"{first}.xml: no <object>" in out
    assert f"{mask_id}.png: mask size 9x7 differs from image size" in out
    assert f"{first}.xml: size 5x5 differs from image size" in out
    assert "4 problem(s)" in out  # each problem once (the mask is in val and trainval)


def _tree(root: Path, splits: dict[str, list[str]]) -> Path:
    """`root/SPLIT/CLASS/i.png` (class '' = images directly in the split folder)."""
    for split, classes in splits.items():
        for cls in classes:
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(2):
                Image.new("RGB", (32, 32), (40 * i, 90, 200)).save(folder / f"{i}.png")
    return root


@pytest.mark.parametrize(("splits", "accepted"), [
    ({"train": ["a", "b"]}, False),                      # no val/: the tree
    ({"train": ["a"], "val": ["a"]}, False),             # a single class
    ({"train": [""], "val": ["a", "b"]}, False),         # unlabelled train images
    ({"train": ["a", "b"], "val": ["a", "b"]}, True),
])
def test_data_check_accepts_exactly_what_eval_accepts(tmp_path: Path, capsys, splits, accepted):
    root = _tree(tmp_path / "ds", splits)
    checked = data_cli(["data", "check", "--data", str(root), "--format", "imagenet"])
    evaluated = data_cli(["eval", "--protocol", "knn", "--model", "arch:alexnet_small",
                          "--data", str(root), "--set", "k=2", "--no-store", "--no-progress"])
    assert (checked, evaluated) == ((0, 0) if accepted else (2, 2))
    if not accepted:
        assert "problem" in capsys.readouterr().err


def test_data_check_of_a_training_folder_says_what_eval_needs(tmp_path: Path, capsys):
    root = _tree(tmp_path / "ds", {".": ["a", "b"]})
    assert data_cli(["data", "check", "--data", str(root), "--format", "imagenet"]) == 0
    assert "`dcbench eval` needs ROOT/train + ROOT/val" in capsys.readouterr().out
