"""Arguments of `dcbench train` (light: no torch, pandas or matplotlib, so `--help` and
argument errors answer before torch is imported; the runner is `dcbench.cli.train`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dcbench.cli.parsers.watch import add_watch_arguments, check_watch_args
from dcbench.core.errors import UserError

HELP = "train a DeepCluster model (k-means or PIC) on a folder of images"
EPILOG = """recipes: tiny, deepcluster-alexnet, deepcluster-vgg16, pic-imnet-sob, km-imnet-sob,
         km-imnet-rgb, km-fl1m-sob, km-fl2m-sob (or a path to a YAML file)
examples:
  dcbench data synth --out synth/cls
  dcbench train --recipe tiny --data synth/cls/train --out runs/tiny
  dcbench train --recipe tiny --data synth/cls/train --out runs/tiny --epochs 40 --resume
  dcbench train --recipe km-imnet-sob --data /datasets/imagenet/train --out runs/km-sob
  dcbench train --recipe deepcluster-alexnet --data DIR --out runs/dc --set k=3000 --set lr=0.02
  torchrun --nproc_per_node 8 -m dcbench train --recipe deepcluster-vgg16 --data DIR --out runs/v
  dcbench train --recipe tiny --data synth/cls/train --out runs/tiny --wandb my-project
  dcbench status runs/tiny             # where a run is, from another terminal
  dcbench train --list-recipes
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `dcbench train`."""
    parser.add_argument("--recipe", help="shipped recipe name or a YAML file")
    parser.add_argument("--data", help="training images: ImageFolder tree or a flat folder")
    parser.add_argument("--out", help="run directory (config, logs, assignments, checkpoints)")
    parser.add_argument("--epochs", type=int, help="override the recipe's number of epochs")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a config key (repeatable)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its last finished epoch")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bars: a whole-run bar and one per pass (default: when "
                             "stderr is a terminal)")
    parser.add_argument("--list-recipes", action="store_true", help="list recipes and exit")
    add_watch_arguments(parser)


def check_args(args: argparse.Namespace) -> None:
    """The checks that need no data: `--recipe`, `--data` and `--out` are given."""
    if args.list_recipes:
        return
    check_watch_args(args)
    missing = [flag for flag, value in (("--recipe", args.recipe), ("--data", args.data),
                                        ("--out", args.out)) if not value]
    if missing:
        raise UserError(f"dcbench train needs {', '.join(missing)} (see dcbench train --help)")
    if not Path(args.data).expanduser().is_dir():  # before torch is imported
        raise UserError(f"image folder not found: --data {args.data} (expected a folder of "
                        "class folders of images, or of images)")
