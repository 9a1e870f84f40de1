"""A self-contained HTML report: leaderboard tables plus training curves as embedded PNGs.

Training curves come from `RUN_DIR/log.jsonl` through `dcbench.viz.curves` (one panel per
quantity; missing keys and a torn last line are tolerated), drawn with matplotlib's Agg
canvas (no display, no global pyplot state) and inlined as base64.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path

from dcbench.leaderboards.export import display_frame, html_page, to_html_table
from dcbench.leaderboards.published import list_tables, table_info
from dcbench.leaderboards.tables import KIND_PUBLISHED, Leaderboard
from dcbench.viz.curves import available_panels, curves_figure, figure_png, log_path, parse_log


def run_curves(run_dirs: Sequence[str | Path]) -> list[tuple[str, str]]:
    """(label, base64 PNG) for each run directory that has curves to plot."""
    out = []
    for run_dir in run_dirs:
        text = log_path(run_dir).read_text(encoding="utf-8", errors="replace")
        frames = {Path(run_dir).name: parse_log(text)}  # no finished epoch yet: no figure
        if available_panels(frames):
            png = figure_png(curves_figure(frames))
            out.append((str(run_dir), base64.b64encode(png).decode("ascii")))
    return out


def build_report(leaderboard: Leaderboard, table_names: Sequence[str] | None = None,
                 run_dirs: Sequence[str | Path] = (), title: str = "dcbench report") -> str:
    """The HTML report: the named tables (default: those holding our results, else all
    matchable ones) with our rows merged in, then the training curves of `run_dirs`."""

    curves = run_curves(run_dirs)  # validate run dirs before the (slower) tables
    if table_names:
        infos = [table_info(name) for name in table_names]
        merged = [(info, leaderboard.table(info.id)) for info in infos]
    else:
        candidates = [(info, leaderboard.table(info.id)) for info in list_tables()
                      if info.matchable]
        merged = [(i, f) for i, f in candidates if (f["kind"] != KIND_PUBLISHED).any()]
        merged = merged or candidates
    sections = [(info.id, f"{info.title} ({info.source}; unit {info.unit})",
                 to_html_table(display_frame(frame, info))) for info, frame in merged]
    return html_page(title, sections, curves)
