"""Arguments of `dcbench reproduce` (light: no torch, pandas or matplotlib, so `--help` and
argument errors answer before torch is imported; the runner is `dcbench.cli.reproduce`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dcbench.cli.parsers.watch import add_watch_arguments, check_watch_args
from dcbench.core.errors import UserError, did_you_mean

#: the --data names (`leaderboards.reproduce.DATA_NAMES`, kept equal by tests/cli/test_parsers.py)
DATA_NAME_LIST = ("imagenet", "places205", "voc", "retrieval")

HELP = "run every protocol a published table needs and print the table with your model's row"
EPILOG = """examples:
  dcbench reproduce --list                       # tables with a plan and the data each reads
  dcbench reproduce thesis-5.5 --model deepcluster-alexnet --data voc=/datasets/VOCdevkit \\
      --dry-run                                  # each eval command, its data, an ETA
  dcbench reproduce eccv-table1-imagenet --model path/to/my_model \\
      --data imagenet=/datasets/imagenet --against DeepCluster
  dcbench reproduce thesis-5.5 --model deepcluster-alexnet --data voc=/datasets/VOCdevkit \\
      --resume                                   # after an interruption: finished runs kept
  dcbench reproduce thesis-5.3 --model runs/tiny/final --data imagenet=synth/cls \\
      --schedule smoke                           # the whole table on the built-in data
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `dcbench reproduce`."""
    parser.add_argument("table", nargs="?", help="published table id (see --list)")
    parser.add_argument("--model", help="model spec (catalog name, hub dir, checkpoint, ...)")
    parser.add_argument("--data", action="append", default=[], metavar="NAME=ROOT",
                        help="a dataset root: imagenet, places205, voc (VOCdevkit), retrieval "
                             "(oxford5k/ + paris6k/); repeatable; columns without one are "
                             "reported as not run")
    parser.add_argument("--schedule", default="published",
                        help="run-length preset of every run: published (default) or smoke")
    parser.add_argument("--seed", type=int, help="seed of every run")
    parser.add_argument("--fast", action="store_true",
                        help="linear-conv, mlp: train on cached center-crop features")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="config override, passed to every run whose protocol has KEY")
    parser.add_argument("--against", metavar="METHOD",
                        help="published row the deltas are computed against (default: the "
                             "row naming the model, else the table's DeepCluster row)")
    parser.add_argument("--device", help="cpu or cuda[:N] (default: cuda when available)")
    parser.add_argument("--out", help="plan folder: one run dir per eval, plan.json, "
                                      "table.{md,tex,html} (default: "
                                      "$DCBENCH_HOME/reproduce/TABLE/MODEL-SCHEDULE)")
    parser.add_argument("--store", help="SQLite results store "
                                        "(default: $DCBENCH_HOME/results.sqlite)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the plan (commands, data, estimated time); run nothing")
    parser.add_argument("--resume", action="store_true",
                        help="continue the plan in --out: finished runs are kept")
    parser.add_argument("--list", action="store_true",
                        help="list the tables with a plan and the data each reads")
    add_watch_arguments(parser)


def check_args(args: argparse.Namespace) -> None:
    """The checks that need no torch: TABLE and --model given, every --data a NAME=ROOT with a
    known name and an existing folder (the table-specific checks come in the runner)."""
    check_watch_args(args)  # a malformed --wandb is refused before anything is planned
    if args.list:
        return
    if not args.table or not args.model:
        raise UserError("dcbench reproduce needs TABLE and --model (see dcbench reproduce "
                        "--list)")
    seen = set()
    for pair in args.data:
        name, sep, root = (part.strip() for part in pair.partition("="))
        if not sep or not name or not root:
            raise UserError(f"--data expects NAME=ROOT (e.g. imagenet=/datasets/imagenet), "
                            f"got {pair!r}")
        if name not in DATA_NAME_LIST:
            raise UserError(f"unknown data name {name!r}; " + did_you_mean(name,
                                                                          list(DATA_NAME_LIST)))
        if name in seen:
            raise UserError(f"--data {name}= given twice")
        seen.add(name)
        if not Path(root).expanduser().is_dir():
            raise UserError(f"--data {name}={root}: no such folder")

