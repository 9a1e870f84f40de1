"""A self-contained HTML report of the user's work: their results, the published rows they
can be compared with, and their training curves (embedded PNGs, one axis per quantity).

Which results: those of the given eval run ids (the demo passes its own), else those of
the models trained in the given run dirs (by weights sha256) plus the rows evaluated with
them (e.g. low-shot's random init) and the random baselines on the same protocol and
dataset, else every result in the store.

Training curves come from `RUN_DIR/log.jsonl` through `dcbench.viz.curves` (one panel per
quantity; missing keys and a torn last line are tolerated), drawn with matplotlib's Agg
canvas (no display, no global pyplot state) and inlined as base64.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from dcbench.leaderboards.export import display_frame, html_page, to_html_table
from dcbench.leaderboards.published import list_tables, table_info
from dcbench.leaderboards.run_tables import is_random, protocol_tables
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


def select_results(results: pd.DataFrame, run_dirs: Sequence[str | Path] = (),
                   eval_runs: Sequence[str] = ()) -> pd.DataFrame:
    """The rows a report is about (see the module docstring)."""
    if eval_runs:
        return results[results.run_id.isin(list(eval_runs))]
    shas = {sha for run in run_dirs for sha in run_weights_sha256(run)}
    if not shas:
        return results
    mine = results[results.model_sha256.isin(shas)]
    with_them = results.run_id.isin(set(mine.run_id))
    cells = set(zip(mine.protocol, mine.dataset, strict=True))
    same_cell = pd.Series([c in cells for c in zip(results.protocol, results.dataset,
                                                   strict=True)], index=results.index)
    randoms = results.model.map(lambda m: is_random(Path(str(m)).name))
    return results[with_them | (same_cell & randoms)]


def run_weights_sha256(run_dir: str | Path) -> set[str]:
    """The weights hashes recorded in a training run's hub folders (final, checkpoints)."""
    shas = set()
    for config in Path(run_dir).glob("**/config.json"):
        try:
            sha = json.loads(config.read_text()).get("weights_sha256")
        except (OSError, ValueError):
            continue
        if sha:
            shas.add(str(sha))
    return shas


def build_report(leaderboard: Leaderboard, table_names: Sequence[str] | None = None,
                 run_dirs: Sequence[str | Path] = (), title: str = "dcbench report",
                 eval_runs: Sequence[str] = ()) -> str:
    """The HTML report: our results per protocol (random vs trained), the published tables
    holding comparable rows (or those named), then the training curves of `run_dirs`."""
    curves = run_curves(run_dirs)  # validate run dirs before the (slower) tables
    ours = select_results(leaderboard.results, run_dirs, eval_runs)
    sections = []
    for name, table in protocol_tables(ours):
        pairs = ", ".join(f"Δ {m} = {m} − {b}" for m, b in table.attrs.get(
            "baselines", {}).items())
        caption = (f"your results: {name}, mean ± std over seeds"
                   + (f"; trained minus random init: {pairs}" if pairs else ""))
        anchor = "results-" + name.replace(" on ", "-").replace(" ", "_")
        sections.append((anchor, caption, to_html_table(table)))
    board = Leaderboard(ours) if len(ours) else leaderboard
    if table_names:
        infos = [table_info(name) for name in table_names]
        merged = [(info, board.table(info.id)) for info in infos]
    else:
        candidates = [(info, board.table(info.id)) for info in list_tables() if info.matchable]
        merged = [(i, f) for i, f in candidates if (f["kind"] != KIND_PUBLISHED).any()]
    for info, frame in merged:
        compared = "with your comparable rows and deltas" if (
            frame["kind"] != KIND_PUBLISHED).any() else "published only: none of your " \
            "results is measured like it (dataset, protocol, layer), so no delta is computed"
        sections.append((info.id, f"{info.title} ({info.source}; unit {info.unit}); {compared}",
                         to_html_table(display_frame(frame, info))))
    if not sections:
        sections.append(("results", "no results yet: run `dcbench eval` (or `dcbench demo`)",
                         ""))
    return html_page(title, sections, curves)
