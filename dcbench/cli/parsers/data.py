"""Arguments of `dcbench data` (light: no torch, pandas or matplotlib, so `--help` and
argument errors answer before torch is imported; the runner is `dcbench.cli.data`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dcbench.cli.arg_types import float_in, int_in, seed

MAX_SYNTH_SIZE = 1024  # image side of the built-in sets; larger is a typo (and GBs of PNGs)
MAX_IMAGES = 1_000_000  # images per class or split


HELP = ("make built-in datasets (synth: shapes; digits: 1,797 real handwritten digits) "
        "or validate a dataset tree (check)")
EPILOG = """examples:
  dcbench data synth --out synth                       # synth/cls (8 shape classes) + synth/voc
  dcbench data synth --out synth-cls --kind cls --per-class 100 --corrupt 4
  dcbench data synth --out synth-voc --kind voc --size 128 --seed 1
  dcbench data digits --out digits                     # real digits: digits/train, digits/val
  dcbench data synth --out synth-ret --kind retrieval      # synth-ret/retrieval/{oxford5k,paris6k}
  dcbench data check --data synth/cls --format imagenet
  dcbench data check --data synth/cls --format places
  dcbench data check --data synth/voc --format voc
  dcbench data check --data /datasets/imagenet --format imagenet --sample 2000 --workers 8
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the `synth`, `digits` and `check` verbs."""
    sub = parser.add_subparsers(dest="data_command", metavar="{synth,digits,check}")
    sub.required = True
    synth = sub.add_parser(
        "synth",
        help="write the procedurally drawn classification and/or VOC datasets",
        description="Write OUT/cls (ImageNet-style folders + Places-style list files) and/or "
        "OUT/voc (VOCdevkit/VOC2007 + VOC2012). Deterministic by --seed.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    synth.add_argument("--out", required=True, type=Path, help="new (or empty) output folder")
    synth.add_argument("--kind", choices=("cls", "voc", "retrieval", "all"), default="all",
                       help="all = cls + voc; retrieval = Oxford5k/Paris6k look-alikes")
    synth.add_argument("--seed", type=seed, default=0)
    synth.add_argument(
        "--size",
        type=int_in(16, MAX_SYNTH_SIZE),
        default=None,
        help="image side in pixels (default 64 for cls, 128 for voc)",
    )
    synth.add_argument("--classes", type=int_in(2, 100), default=8,
                       help="cls: number of shape classes")
    synth.add_argument("--per-class", type=int_in(1, MAX_IMAGES), default=64,
                       help="cls: train images per class")
    synth.add_argument("--val-per-class", type=int_in(0, MAX_IMAGES), default=16,
                       help="cls: val images per class")
    synth.add_argument(
        "--voc-images",
        type=int_in(1, MAX_IMAGES),
        nargs=3,
        default=(80, 80, 120),
        metavar=("TRAIN", "VAL", "TEST"),
        help="voc: images per split",
    )
    synth.add_argument(
        "--corrupt",
        type=int_in(0, MAX_IMAGES),
        default=0,
        help="cls: add N broken files to train/ (robust-decoding exercise)",
    )
    digits = sub.add_parser(
        "digits",
        help="write scikit-learn's 1,797 real handwritten digits as an ImageFolder",
        description="Write OUT/{train,val}/DIGIT/*.png (+ train.txt, val.txt): the 8x8 scans of "
        "sklearn.datasets.load_digits upscaled (bicubic) to --size px RGB, split train/val "
        "stratified by digit. Deterministic by --seed; no network needed.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    digits.add_argument("--out", required=True, type=Path, help="new (or empty) output folder")
    digits.add_argument("--size", type=int_in(8, MAX_SYNTH_SIZE), default=64,
                        help="image side in pixels")
    digits.add_argument("--val-fraction", type=float_in(0, 1, open_low=True, open_high=True),
                        default=0.25,
                        help="share of each digit held out in val/")
    digits.add_argument("--seed", type=seed, default=0, help="seed of the train/val split")
    digits.add_argument("--per-class", type=int_in(4, MAX_IMAGES), default=None,
                        help="keep N images per digit (train + val; default: all ~180)")
    check = sub.add_parser(
        "check",
        help="validate a dataset tree: counts per class/split and every problem",
        description="Exit 0 when the tree is clean, 2 when problems were found.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("--data", required=True, type=Path, help="dataset root folder")
    check.add_argument("--format", dest="fmt", required=True, choices=("imagenet", "places", "voc"))
    check.add_argument(
        "--sample",
        type=int_in(0, 2**31 - 1),
        default=0,
        help="decode only N evenly spaced images per split (0 = all)",
    )
    check.add_argument("--workers", type=int_in(1, 1024), default=1, help="decoding threads")
