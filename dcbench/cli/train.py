"""`dcbench train`: DeepCluster on a folder of images, from a shipped recipe or a YAML file."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from dcbench.cli.parsers.train import check_args
from dcbench.cli.parsers.watch import tracking_options
from dcbench.cli.resume_hint import report_interrupt
from dcbench.core.errors import UserError
from dcbench.core.files import write_json
from dcbench.training.config import list_recipes, recipe_description, resolve_config
from dcbench.training.deepcluster import train
from dcbench.training.rundir import RunDir
from dcbench.viz.training_images import training_images


def run(args: argparse.Namespace) -> int:
    """Resolve the config, then train (or resume)."""

    if args.list_recipes:
        for name in list_recipes():
            print(f"{name:22s} {recipe_description(name)}")
        return 0
    check_args(args)  # also run by the entry point before this module is imported
    config = resolve_config(args.recipe, args.overrides, epochs=args.epochs,
                            progress=True if args.progress else None)
    RunDir(args.out).check_target(args.resume)  # before the dataset scan and the model build
    if not Path(args.data).expanduser().is_dir():
        raise UserError(f"image folder not found: --data {args.data} (expected a folder of "
                        "class folders of images, or of images)")

    quiet = {"DCBENCH_PROGRESS": "0"} if args.progress is False else {}
    saved = {k: os.environ.get(k) for k in quiet}
    os.environ.update(quiet)  # --no-progress: no bars even on a terminal
    argv = list(getattr(args, "_argv", None) or sys.argv[1:])
    watch = tracking_options(args, images=training_images(args.data, config.seed), command=argv)
    try:
        record = train(config, args.data, args.out, resume=args.resume, tracking=watch)
    except KeyboardInterrupt:
        # resumable once the run folder exists (config.yaml + versions.json)
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
