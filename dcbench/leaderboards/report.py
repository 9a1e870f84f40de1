"""A self-contained HTML report of the user's work: their results, the published rows they
can be compared with, and their training curves (embedded PNGs, one axis per quantity).

Which results: those of the given eval run ids (the demo passes its own), else those of
the models trained in the given run dirs (by weights sha256) plus the rows evaluated with
them (e.g. low-shot's random init) and the random baselines on the same protocol and
dataset, else every result in the store.

Training curves come from `RUN_DIR/log.jsonl` (one JSON object per epoch, keys such as
epoch, clustering_loss, train_loss, nmi_prev, nmi_labels, n_nonempty,
ratio_edge_intra_class; missing keys and a torn last line are tolerated). Plots are drawn
with matplotlib's Agg canvas (no display, no global pyplot state) and inlined as base64.
"""

from __future__ import annotations

import base64
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from dcbench.core.errors import UserError
from dcbench.leaderboards.export import display_frame, html_page, to_html_table
from dcbench.leaderboards.published import list_tables, table_info
from dcbench.leaderboards.run_tables import is_random, protocol_tables
from dcbench.leaderboards.tables import KIND_PUBLISHED, Leaderboard
from dcbench.training.rundir import RunDir

# One panel (one y axis) per quantity: the two NMIs share a [0, 1] scale; the losses do not.
PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("NMI (0-1)", ("nmi_prev", "nmi_labels")),
    ("k-means / PIC loss", ("clustering_loss",)),
    ("train loss (cross-entropy)", ("train_loss",)),
    ("non-empty clusters", ("n_nonempty",)),
    ("ratio edge intra-class", ("ratio_edge_intra_class",)),
)
CURVE_KEYS = tuple(key for _, keys in PANELS for key in keys)



def read_log(run_dir: str | Path) -> pd.DataFrame:
    """The numeric training curves of a run (`log.jsonl`), one row per logged epoch."""
    path = Path(run_dir) / "log.jsonl"
    if not path.is_file():
        raise UserError(f"{run_dir}: no log.jsonl; expected a training run directory")

    records = [{k: record[k] for k in ("epoch", *CURVE_KEYS) if _is_number(record.get(k))}
               for record in RunDir(run_dir).read_log() if isinstance(record, dict)]
    frame = pd.DataFrame.from_records(records)
    if "epoch" not in frame:
        frame["epoch"] = range(len(frame))
    frame["epoch"] = frame["epoch"].fillna(pd.Series(range(len(frame)), dtype=float))
    return frame


def _is_number(value: object) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(float(value)))


def plot_curves(log: pd.DataFrame, title: str) -> bytes | None:
    """A PNG of the curves present in `log` (one panel per quantity), or None if none are."""
    figure = curves_figure(log, title)
    if figure is None:
        return None
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def curves_figure(log: pd.DataFrame, title: str) -> Any:
    """The matplotlib Figure of `plot_curves` (one axes per quantity), or None."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # lazy: heavy import
    from matplotlib.figure import Figure  # lazy: heavy import

    panels = [(name, [k for k in keys if k in log and log[k].notna().any()])
              for name, keys in PANELS]
    panels = [(name, keys) for name, keys in panels if keys]
    if not panels:
        return None
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure = Figure(figsize=(4.0 * columns, 3.0 * rows + 0.4), dpi=100)
    FigureCanvasAgg(figure)
    for i, (name, keys) in enumerate(panels):
        axes = figure.add_subplot(rows, columns, i + 1)
        for key in keys:
            part = log[["epoch", key]].dropna()
            axes.plot(part["epoch"], part[key], marker="o", markersize=3, label=key)
        axes.set_title(name)
        axes.set_xlabel("epoch")
        axes.set_ylabel(name.split(" (")[0])
        axes.grid(alpha=0.3)
        if len(keys) > 1:
            axes.legend(fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def run_curves(run_dirs: Sequence[str | Path]) -> list[tuple[str, str]]:
    """(label, base64 PNG) for each run directory that has curves to plot."""
    out = []
    for run_dir in run_dirs:
        png = plot_curves(read_log(run_dir), Path(run_dir).name)
        if png is not None:
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
