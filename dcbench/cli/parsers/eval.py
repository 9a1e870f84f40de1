"""Arguments of `dcbench eval` (light: no torch, pandas or matplotlib, so `--help` and
argument errors answer before torch is imported; the runner is `dcbench.cli.eval`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dcbench.cli.parsers.watch import add_watch_arguments, check_watch_args
from dcbench.core.errors import UnknownNameError, UserError, did_you_mean

HELP = "evaluate a model with one protocol (linear-conv, mlp, low-shot, knn, VOC, ...)"
EPILOG = """schedules: published (default: the paper's settings) | smoke (minutes on the built-in
  64-px data: fewer epochs/iterations/draws, smaller batches, no loader workers; see
  `dcbench eval --list` and each protocol's SCHEDULES for exactly what changes)
examples:
  dcbench eval --list
  dcbench eval --protocol linear-conv --model deepcluster-alexnet --data /datasets/imagenet
  dcbench eval --protocol linear-conv --model deepcluster-alexnet --data /datasets/places205 \\
      --dialect goyal2019 --layers conv3,conv4,conv5 --out runs/lin-places
  dcbench eval --protocol linear-conv --model runs/tiny/final --data synth/cls \\
      --schedule smoke --fast              # minutes: a quick answer before the published run
  dcbench eval --protocol linear-conv --model deepcluster-alexnet --data /datasets/imagenet \\
      --dry-run                            # the plan and its estimated time, nothing run
  dcbench eval --protocol knn --model random-alexnet-sobel --data synth/cls --set k=200
  dcbench eval --protocol low-shot --model runs/tiny/final --data synth/cls --schedule smoke \\
      --out runs/lowshot
  dcbench eval --protocol low-shot --model runs/tiny/final --data synth/cls --schedule smoke \\
      --out runs/lowshot --resume          # after an interruption: finished draws are kept
  dcbench eval --protocol voc07-cls --model deepcluster-alexnet --data /datasets/VOCdevkit \\
      --train-layers all
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `dcbench eval`."""
    parser.add_argument("--protocol", help="protocol name (see --list)")
    parser.add_argument("--model", help="model spec: catalog name, hub dir, checkpoint, "
                                        "hf-hub:, torchvision:, arch:NAME")
    parser.add_argument("--name", help="short name of the model in tables and reports "
                                       "(stored with its weights' sha256; default: the name "
                                       "stored for these weights, else the card name, else "
                                       "the folder name)")
    parser.add_argument("--data", help="dataset root (train/ + val/ folders or list files; "
                                       "VOCdevkit for the VOC protocols)")
    parser.add_argument("--dialect", help="named protocol preset (default dc2018)")
    parser.add_argument("--schedule", default="published",
                        help="run-length preset: published (default) or smoke")
    parser.add_argument("--layers", help="comma-separated taps, e.g. conv3,conv4,conv5")
    parser.add_argument("--fast", action="store_true", default=None,
                        help="linear-conv, mlp: train on cached center-crop features "
                             "(knn, knn-graph, nmi read that cache by default)")
    parser.add_argument("--seed", type=int, help="seed for splits, draws, init and order")
    parser.add_argument("--train-layers", dest="train_layers",
                        help="VOC protocols: fc6-8 (frozen convs) or all")
    parser.add_argument("--train-bn-scales", dest="train_bn_scales", action="store_true",
                        default=None, help="VOC protocols: also train BN scales (erratum)")
    parser.add_argument("--batch-size", dest="batch_size", type=int,
                        help="images per batch (the protocol's batch_size; see --list)")
    parser.add_argument("--workers", type=int,
                        help="data loader processes (protocols with a `workers` key)")
    parser.add_argument("--config", help="YAML file of config keys (below --set)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a config key (repeatable)")
    parser.add_argument("--device", help="cpu or cuda[:N] (default: cuda when available)")
    parser.add_argument("--out", help="run dir: config.yaml, versions.json, results.json, "
                                      "checkpoints (default: $DCBENCH_HOME/runs/RUN_ID)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its checkpoints")
    parser.add_argument("--store", help="SQLite results store "
                                        "(default: $DCBENCH_HOME/results.sqlite)")
    parser.add_argument("--no-store", action="store_true",
                        help="do not write to the results store")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bars (default: when stderr is a terminal)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the plan and its estimated time (a few batches are timed) "
                             "and exit without writing anything")
    parser.add_argument("--list", action="store_true", help="list protocols and exit")
    add_watch_arguments(parser)


#: the registered protocols, named here so that a typo is refused before torch is imported
#: (tests/cli/test_parsers.py checks this tuple against `protocols.base.list_protocols()`)
PROTOCOL_NAMES = ("knn", "knn-graph", "linear-conv", "low-shot", "mlp", "nmi", "retrieval",
                  "voc07-cls", "voc07-det", "voc07-lowshot-svm", "voc07-svm", "voc12-seg")


def check_args(args: argparse.Namespace) -> None:
    """The checks that need no model or data: the required flags and the protocol name."""
    if args.list:
        return
    missing = [f"--{n}" for n in ("protocol", "model", "data") if not getattr(args, n)]
    if missing:
        raise UserError(f"dcbench eval needs {', '.join(missing)} (see dcbench eval --help)")
    if args.protocol not in PROTOCOL_NAMES:
        raise UnknownNameError(f"unknown protocol {args.protocol!r}; "
                               + did_you_mean(args.protocol, PROTOCOL_NAMES))
    if not Path(args.data).expanduser().exists():  # before torch is imported
        raise UserError(f"--data {args.data} does not exist")
    check_watch_args(args)
