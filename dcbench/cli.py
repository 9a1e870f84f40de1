"""The one `dcbench` command. Each subcommand lives beside the code it drives.

A subcommand module exposes `HELP` (one line), `EPILOG` (examples), `add_arguments(parser)`
and `run(args) -> int`. Modules are imported lazily, so `dcbench --help` stays fast and a
broken optional dependency only affects its own subcommand.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from dcbench import __version__
from dcbench.errors import UserError

SUBCOMMANDS: dict[str, str] = {
    "train": "dcbench.training.command",
    "eval": "dcbench.protocols.command",
    "hub": "dcbench.hub.command",
    "leaderboard": "dcbench.leaderboards.command",
    "viz": "dcbench.viz.command",
    "data": "dcbench.data.command",
    "demo": "dcbench.demo",
    "bench": "dcbench.bench",
}

EXAMPLES = """examples:
  dcbench demo --quick                          # everything end to end on built-in data
  dcbench hub list                              # the checkpoint catalog
  dcbench eval --protocol linear-conv --model deepcluster-alexnet --data /datasets/imagenet
  dcbench train --recipe tiny --data synth/cls/train --out runs/tiny
  dcbench leaderboard show eccv-table1-imagenet --results
"""


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (imports every subcommand module)."""
    parser = argparse.ArgumentParser(
        prog="dcbench",
        description="Benchmark suite and model hub for DeepCluster-style self-supervised CNNs.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"dcbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(SUBCOMMANDS) + "}")
    sub.required = True
    for name, module_name in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        child = sub.add_parser(
            name,
            help=module.HELP,
            description=module.HELP,
            epilog=getattr(module, "EPILOG", None),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(child)
        child.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse, dispatch, and turn `UserError` into one clear line and exit 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        return int(args._run(args) or 0)
    except UserError as err:
        print(f"dcbench: error: {err}", file=sys.stderr)
        if err.detail:
            print(err.detail, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dcbench: interrupted; completed work is saved, rerun with --resume", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
