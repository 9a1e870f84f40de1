"""`dcbench leaderboard list|show|compare|add|report`: our numbers next to the published ones."""

from __future__ import annotations

import argparse
import os
import sys

from dcbench.core.errors import UserError
from dcbench.core.files import check_output_file
from dcbench.core.rows import read_results_file
from dcbench.leaderboards import export
from dcbench.leaderboards.identity import resolve_models
from dcbench.leaderboards.importing import read_outcome_refs, read_run_dir
from dcbench.leaderboards.paired_table import NO_DATA, paired_column
from dcbench.leaderboards.published import table_info
from dcbench.leaderboards.report import build_report, published_caption, read_claims
from dcbench.leaderboards.store import ResultsStore
from dcbench.leaderboards.tables import Leaderboard


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
            print(f"intervals: {info.id}: deltas are against published numbers: {NO_DATA} "
                  "(paired intervals between your runs: dcbench leaderboard compare)",
                  file=sys.stderr)
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
        keys = resolve_models(board.results, args.models)
        frame = frame.reset_index(drop=True)
        refs = ResultsStore(args.store).outcome_refs()  # the store exists: it had rows
        texts, note = paired_column(board.results, refs, keys, frame, use_holm=args.holm,
                                    resamples=args.resamples)
        for key, name in zip(keys[1:], names[1:], strict=True):
            if any(text != NO_DATA for text in texts[key]):  # else the note says it once
                frame[export.ci_column(name)] = texts[key]
        export.write_output(export.render_compare(frame, names, args.format,
                                                  wide=args.wide, note=note), args.output)
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
    refs = read_outcome_refs(args.run_dir, rows) if args.run_dir else []
    written = store_cls(args.store).import_records(runs, rows, refs)
    kept = f" and per-item outcomes of {len(refs)} of them" if refs else ""
    print(f"imported {written} result row(s){kept} and {len(runs)} run record(s)")
    return 0
