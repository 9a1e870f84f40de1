"""`dcbench leaderboard list|show|compare|add|report`: our numbers next to the published ones."""

from __future__ import annotations

import argparse
import os
import sys

from dcbench.core.errors import UserError
from dcbench.core.files import check_output_file
from dcbench.core.rows import read_results_file
from dcbench.leaderboards import export
from dcbench.leaderboards.importing import read_run_dir
from dcbench.leaderboards.published import table_info
from dcbench.leaderboards.report import build_report, published_caption, read_claims
from dcbench.leaderboards.store import ResultsStore
from dcbench.leaderboards.tables import Leaderboard

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


def _parse_match(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        model, sep, method = pair.partition("=")
        if not sep or not model or not method:
            raise UserError(f"--match expects MODEL=METHOD, got {pair!r}")
        out[model] = method
    return out


def run(args: argparse.Namespace) -> int:
    """Dispatch a `leaderboard` verb (an --output path is checked before any work)."""
    if getattr(args, "output", None):
        check_output_file(args.output, "--output")

    if args.verb == "list":
        frame = Leaderboard().tables()[["id", "title", "source", "rows"]]
        print(export.to_markdown(frame), end="")
        return 0
    if args.verb == "show":
        info = table_info(args.table)
        match = _parse_match(args.match)
        if match and not args.results:
            raise UserError("--match only makes sense with --results")
        board = Leaderboard.from_store(args.store) if args.results else Leaderboard()
        frame = board.table(info.id, results=args.results, match=match)
        export.write_output(export.render(frame, info, args.format), args.output)
        if args.results:
            _, note = published_caption(info, frame)
            if note:  # on stderr: stdout stays the table (pipes, --format csv)
                print(f"note: {info.id}: {note} ({len(board.results)} result row(s) in "
                      "the store)", file=sys.stderr)
        return 0
    if args.verb == "compare":
        board = Leaderboard.from_store(args.store)
        frame = board.compare(args.models)
        names = board.model_names(args.models)
        for column in ("protocol", "metric", "layer"):
            if getattr(args, column):
                frame = frame[frame[column].isin(getattr(args, column))]
        if frame.empty:
            raise UserError("the models share no result cell (protocol, dialect, dataset, "
                            "split, layer, metric)"
                            + (" matching the filters" if args.protocol or args.metric
                               or args.layer else ""))
        export.write_output(export.render_compare(frame, names, args.format,
                                                  wide=args.wide), args.output)
        return 0
    if args.verb == "add":
        return _add(args, ResultsStore)
    if args.verb == "report":

        for name in args.table:
            table_info(name)
        claims = read_claims(args.claims) if args.claims else None
        html = build_report(Leaderboard.from_store(args.store), args.table, args.run,
                            title=args.title, eval_runs=args.eval_run, models=args.model,
                            claims=claims)
        export.write_output(html, args.output)
        os.chmod(args.output, 0o644)  # a report is for sharing (atomic writes make 0600)
        print(f"wrote {args.output}")
        return 0
    raise UserError(f"unknown leaderboard verb {args.verb!r}")


def _add(args: argparse.Namespace, store_cls: type) -> int:

    if bool(args.file) == bool(args.run_dir):
        raise UserError("give either a results file or --from RUN_DIR (exactly one)")
    # validate everything before the store (or its file) is touched
    runs, rows = read_results_file(args.file) if args.file else read_run_dir(args.run_dir)
    written = store_cls(args.store).import_records(runs, rows)
    print(f"imported {written} result row(s) and {len(runs)} run record(s)")
    return 0
