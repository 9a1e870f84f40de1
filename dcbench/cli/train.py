"""`dcbench train`: DeepCluster on a folder of images, from a shipped recipe or a YAML file."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from dcbench.cli.resume_hint import report_interrupt
from dcbench.core.errors import UserError
from dcbench.core.files import write_json
from dcbench.training.config import list_recipes, recipe_description, resolve_config
from dcbench.training.deepcluster import train
from dcbench.training.rundir import RunDir

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


def run(args: argparse.Namespace) -> int:
    """Resolve the config, then train (or resume)."""

    if args.list_recipes:
        for name in list_recipes():
            print(f"{name:22s} {recipe_description(name)}")
        return 0
    missing = [flag for flag, value in (("--recipe", args.recipe), ("--data", args.data),
                                        ("--out", args.out)) if not value]
    if missing:
        raise UserError(f"dcbench train needs {', '.join(missing)} (see dcbench train --help)")
    config = resolve_config(args.recipe, args.overrides, epochs=args.epochs,
                            progress=True if args.progress else None)
    RunDir(args.out).check_target(args.resume)  # before the dataset scan and the model build
    if not Path(args.data).expanduser().is_dir():
        raise UserError(f"image folder not found: --data {args.data} (expected a folder of "
                        "class folders of images, or of images)")

    quiet = {"DCBENCH_PROGRESS": "0"} if args.progress is False else {}
    saved = {k: os.environ.get(k) for k in quiet}
    os.environ.update(quiet)  # --no-progress: no bars even on a terminal
    try:
        record = train(config, args.data, args.out, resume=args.resume)
    except KeyboardInterrupt:
        # resumable once the run folder exists (config.yaml + versions.json)
        argv = list(getattr(args, "_argv", None) or sys.argv[1:])
        return report_interrupt(argv, args.out, saved=RunDir(args.out).is_run())
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    # what the run was trained on, for its model card (`dcbench hub card`)
    write_json(Path(args.out) / "run.json", {"data": str(Path(args.data).resolve()),
                                             "recipe": args.recipe})
    if record:
        print(f"done: {args.out} (epoch {record.get('epoch')}, "
              f"train loss {record.get('train_loss', float('nan')):.3f})")
    return 0
