"""The one `dcbench` command. Each subcommand lives beside the code it drives.

A subcommand has a parser module (`HELP` (one line), `EPILOG` (examples) and
`add_arguments(parser)`; under `dcbench.cli.parsers`, importing only argparse and light
dcbench modules) and a runner module (`run(args) -> int`, the heavy imports). Only the
chosen subcommand's parser is imported to parse, and its runner only once the arguments are
accepted, so `dcbench --help`, `dcbench eval --help` and argument errors answer without
importing torch (well under a second; `benchmarks/startup.py` measures it), and a broken
optional dependency only affects its own subcommand.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable
from types import ModuleType

from dcbench.core.errors import RankFailed, UserError
from dcbench.core.version import __version__

# name -> (parser module, runner module, one-line help shown by `dcbench --help`)
SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "train": ("dcbench.cli.parsers.train", "dcbench.cli.train",
              "train DeepCluster (k-means or PIC) on a folder"),
    "eval": ("dcbench.cli.parsers.eval", "dcbench.cli.eval",
             "run a transfer protocol and store the results"),
    "hub": ("dcbench.cli.parsers.hub", "dcbench.cli.hub",
            "checkpoint catalog: list, pull, convert, card, push"),
    "leaderboard": ("dcbench.cli.parsers.leaderboard", "dcbench.cli.leaderboard",
                    "published tables next to our results"),
    "reproduce": ("dcbench.cli.parsers.reproduce", "dcbench.cli.reproduce",
                  "run every protocol a published table needs"),
    "viz": ("dcbench.cli.parsers.viz", "dcbench.cli.viz",
            "filters, neighbours, activations, gradient ascent, curves"),
    "data": ("dcbench.cli.parsers.data", "dcbench.cli.data",
             "make built-in datasets, check dataset folders"),
    "demo": ("dcbench.cli.parsers.demo", "dcbench.cli.demo",
             "everything end to end on built-in data, no network"),
    "status": ("dcbench.cli.parsers.status", "dcbench.cli.status",
               "where a run is: epoch i/N, ETA, last metrics, alive, resume command"),
    "bench": ("dcbench.cli.bench", "dcbench.cli.bench",  # light already: one module
              "performance benchmarks against the usual baselines"),
}

EXAMPLES = """examples:
  dcbench demo --quick                          # everything end to end on built-in data
  dcbench hub list                              # the checkpoint catalog
  dcbench eval --protocol linear-conv --model deepcluster-alexnet --data /datasets/imagenet
  dcbench train --recipe tiny --data synth/cls/train --out runs/tiny
  dcbench leaderboard show eccv-table1-imagenet --results
"""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Examples kept as written; every option's default shown (unless None/False/given)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (_hidden_default(default) or "default" in text
                or "%(default)" in text or isinstance(action, argparse._VersionAction)):
            return text
        if action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            shown = ",".join(map(str, default)) if isinstance(default, list | tuple) \
                else default
            return f"{text} (default: {shown})".strip()
        return text


def _hidden_default(default: object) -> bool:
    """Defaults not worth showing: None, False (flags), SUPPRESS, empty lists."""
    return (default is None or default is False or default == argparse.SUPPRESS
            or (isinstance(default, list | tuple) and not default))


def _apply_formatter(parser: argparse.ArgumentParser) -> None:
    """Use HelpFormatter on `parser` and on every sub-parser below it."""
    parser.formatter_class = HelpFormatter
    for action in parser._actions:
        if action.help is None and action.option_strings:
            action.help = ""  # so that the formatter adds "(default: ...)"
        if action.help == "" and not _hidden_default(action.default):
            action.help = "(default: %(default)s)"
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _apply_formatter(child)


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one `dcbench: error:` line and exit 2, like
    every other bad input (argparse would print the usage block first)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        """Raise instead of printing usage (subparsers inherit this class)."""
        where = "" if self.prog == "dcbench" else f"{self.prog}: "  # no `dcbench: dcbench:`
        raise UserError(f"{where}{message} (see `{self.prog} --help`)")


def _runner(parser_module: ModuleType, module_name: str) -> Callable[[argparse.Namespace], int]:
    """`run(args)` of the runner module, imported only when called (after parsing) and after
    the parser module's own `check_args(args)`, if it has one (checks that need no torch)."""

    def run(args: argparse.Namespace) -> int:
        check = getattr(parser_module, "check_args", None)
        if check is not None:
            check(args)
        return importlib.import_module(module_name).run(args)

    return run


def build_parser(chosen: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; only subcommand `chosen` gets its (imported) arguments."""
    parser = OneLineParser(
        prog="dcbench",
        description="Benchmark suite and model hub for DeepCluster-style self-supervised CNNs.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"dcbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(SUBCOMMANDS) + "}")
    sub.required = True
    for name, (parser_module, runner_module, summary) in SUBCOMMANDS.items():
        if name != chosen:
            sub.add_parser(name, help=summary)
            continue
        module = importlib.import_module(parser_module)
        child = sub.add_parser(
            name,
            help=summary,
            description=module.HELP,
            epilog=getattr(module, "EPILOG", None),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(child)
        child.set_defaults(_run=_runner(module, runner_module))
    _apply_formatter(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse, dispatch, and turn `UserError` into one clear line and exit 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        chosen = next((a for a in argv if not a.startswith("-")), None)
        parser = build_parser(chosen if chosen in SUBCOMMANDS else None)
        args = parser.parse_args(argv)
        args._argv = argv  # the words typed, for the exact resume command after Ctrl-C
        return int(args._run(args) or 0)
    except UserError as err:
        print(f"dcbench: error: {err}", file=sys.stderr)
        if err.detail:
            print(err.detail, file=sys.stderr)
        return 2
    except RankFailed as err:  # torchrun: a peer failed and printed its own error
        print(f"dcbench: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("dcbench: interrupted; train, eval and demo continue where they stopped when "
              "rerun with the same arguments plus --resume", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
