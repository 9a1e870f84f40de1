"""`dcbench data`: make the built-in datasets (synthetic shapes, real digits), check a tree."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from dcbench.core.errors import UserError
from dcbench.core.files import check_output_dir, staged_dir
from dcbench.data.check import check_tree
from dcbench.data.digits import make_digits_set
from dcbench.data.synthetic import make_classification_set, make_voc_set
from dcbench.data.synthetic_retrieval import write_retrieval_set


def _run_synth(args: argparse.Namespace) -> int:

    out: Path = check_output_dir(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"output folder {out} exists and is not empty; choose a new folder")
    start = time.perf_counter()
    kinds = ["cls", "voc"] if args.kind == "all" else [args.kind]
    with staged_dir(out) as stage:
        if "cls" in kinds:
            make_classification_set(
                stage / "cls",
                n_classes=args.classes,
                train_per_class=args.per_class,
                val_per_class=args.val_per_class,
                size=args.size or 64,
                seed=args.seed,
                corrupt=args.corrupt,
            )
        if "retrieval" in kinds:
            write_retrieval_set(stage / "retrieval", size=args.size or 160, seed=args.seed)
        if "voc" in kinds:
            n_train, n_val, n_test = args.voc_images
            make_voc_set(
                stage / "voc",
                n_train=n_train,
                n_val=n_val,
                n_test=n_test,
                size=args.size or 128,
                seed=args.seed,
            )
    elapsed = time.perf_counter() - start
    if "cls" in kinds:
        print(
            f"wrote {out / 'cls'}: train/ val/ ({args.classes} classes, {args.per_class} + "
            f"{args.val_per_class} per class, {args.corrupt} corrupt), train.txt, val.txt"
        )
    if "voc" in kinds:
        print(
            f"wrote {out / 'voc' / 'VOCdevkit'}: VOC2007 (train/val/trainval/test), "
            "VOC2012 (train/val/trainval + SegmentationClass)"
        )
    if "retrieval" in kinds:
        print(f"wrote {out / 'retrieval'}: oxford5k/ paris6k/ (jpg/ + gt_files/, the released "
              "layout; one blacklisted corrupt Paris file)")
    print(f"done in {elapsed:.1f}s")
    return 0


def _run_digits(args: argparse.Namespace) -> int:
    out: Path = args.out.expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"output folder {out} exists and is not empty; choose a new folder")
    start = time.perf_counter()
    make_digits_set(out, size=args.size, val_fraction=args.val_fraction, seed=args.seed,
                    per_class=args.per_class)
    n_train = len((out / "train.txt").read_text().splitlines())
    n_val = len((out / "val.txt").read_text().splitlines())
    print(f"wrote {out}: train/ ({n_train} images) val/ ({n_val}), 10 digit classes, "
          f"{args.size}x{args.size} px, train.txt, val.txt; done in "
          f"{time.perf_counter() - start:.1f}s")
    return 0


def _run_check(args: argparse.Namespace) -> int:

    report = check_tree(args.data, args.fmt, sample=args.sample, workers=args.workers)
    print(report.format())
    if not report.ok:
        raise UserError(f"{len(report.problems)} problem(s) found in {report.root}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Dispatch `data synth` / `data check`."""
    if args.data_command == "synth":
        return _run_synth(args)
    if args.data_command == "digits":
        return _run_digits(args)
    return _run_check(args)
