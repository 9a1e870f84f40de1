"""Arguments of `dcbench leaderboard` (light: no torch, pandas or matplotlib, so `--help` and
argument errors answer before torch is imported; the runner is `dcbench.cli.leaderboard`)."""

from __future__ import annotations

import argparse

from dcbench.cli.arg_types import int_in

HELP = "published tables (thesis, ECCV) with our results merged in; import and export results"
EPILOG = """examples:
  dcbench leaderboard list
  dcbench leaderboard show eccv-table1-imagenet --results
  dcbench leaderboard show thesis-5.3 --results --format latex --output table53.tex
  dcbench leaderboard show eccv-table2 --results --match my-model=DeepCluster
  dcbench leaderboard compare deepcluster-alexnet random-alexnet-sobel
  dcbench leaderboard compare tiny-sobel random-sobel      # names, paths or sha256 prefixes
  dcbench leaderboard add results.json
  dcbench leaderboard add --from runs/eval-linear-conv
  dcbench leaderboard report --run runs/tiny --output report.html
"""


FORMAT_CHOICES = ("md", "csv", "latex", "html")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `leaderboard` verbs."""
    verbs = parser.add_subparsers(dest="verb", metavar="{list,show,compare,add,report}")
    verbs.required = True

    def verb(name: str, help_text: str) -> argparse.ArgumentParser:
        child = verbs.add_parser(name, help=help_text, description=help_text)
        child.add_argument("--store", default=None,
                           help="results store (default: $DCBENCH_HOME/results.sqlite)")
        return child

    verb("list", "the published tables: id, title, source, rows")

    show = verb("show", "one published table, optionally with our results and deltas")
    show.add_argument("table", help="table id, e.g. eccv-table1-imagenet (see `list`)")
    show.add_argument("--results", action="store_true",
                      help="merge in our results for the same protocol, with deltas")
    show.add_argument("--match", action="append", default=[], metavar="MODEL=METHOD",
                      help="compare MODEL (name, path or sha256 prefix) with the published "
                           "row METHOD (repeatable)")
    _output_args(show)

    compare = verb("compare", "two or more models on every protocol they share")
    compare.add_argument("models", nargs="+",
                         help="models: a name (e.g. tiny-sobel), a path to the weights in any "
                              "form, or a weights sha256 prefix")
    compare.add_argument("--protocol", action="append", default=[],
                         help="only these protocols (repeatable)")
    compare.add_argument("--metric", action="append", default=[],
                         help="only these metrics, e.g. top1 (repeatable)")
    compare.add_argument("--layer", action="append", default=[],
                         help="only these layers, e.g. conv5 (repeatable)")
    compare.add_argument("--holm", action="store_true",
                         help="adjust the paired p-values for the number of tests made "
                              "(Holm's step-down correction)")
    compare.add_argument("--resamples", type=int_in(100, 1_000_000), default=10_000,
                         help="bootstrap resamples of each paired interval (default 10,000; "
                              "fewer is faster: a detection mAP takes ~25 s per 10,000 on "
                              "2 cores)")
    compare.add_argument("--wide", action="store_true",
                         help="every column (dialect, counts) and full model names; the "
                              "default fits 120 columns")
    _output_args(compare)

    add = verb("add", "import results made elsewhere (validated; nothing written on error)")
    add.add_argument("file", nargs="?", help="results JSON / JSON-lines file")
    add.add_argument("--from", dest="run_dir", default=None,
                     help="an eval run directory holding results.json")

    report = verb("report", "a self-contained HTML report: your results per protocol (random "
                            "vs trained), comparable published tables, training curves")
    report.add_argument("--table", action="append", default=[],
                        help="published table id to include (repeatable; default: the tables "
                             "holding comparable results)")
    report.add_argument("--run", action="append", default=[], metavar="RUN_DIR",
                        help="training run: plot its curves and report the results of its "
                             "weights, with random baselines (repeatable)")
    report.add_argument("--eval-run", action="append", default=[], metavar="RUN_ID",
                        help="report exactly the rows of these eval run ids (repeatable)")
    report.add_argument("--model", action="append", default=[], metavar="MODEL",
                        help="report this model's results with its random baselines: a "
                             "name, a path to its weights or a sha256 prefix (repeatable)")
    report.add_argument("--claims", default=None, metavar="FILE",
                        help="claim verdicts to show first (JSON, as `dcbench demo` writes "
                             "to DEMO/claims.json; found there by default for demo runs)")
    report.add_argument("--title", default="dcbench report", help="page title")
    report.add_argument("--output", required=True, help="HTML file to write")


def _output_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=FORMAT_CHOICES, default="md")
    parser.add_argument("--output", default=None, help="write to this file instead of stdout")
