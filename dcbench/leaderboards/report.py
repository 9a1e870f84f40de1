"""A self-contained HTML report: leaderboard tables plus training curves as embedded PNGs.

Training curves come from `RUN_DIR/log.jsonl` (one JSON object per epoch, keys such as
epoch, clustering_loss, train_loss, nmi_prev, nmi_labels, n_nonempty,
ratio_edge_intra_class; missing keys and a torn last line are tolerated). Plots are drawn
with matplotlib's Agg canvas (no display, no global pyplot state) and inlined as base64.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from dcbench.core.errors import UserError
from dcbench.leaderboards.export import display_frame, html_page, to_html_table
from dcbench.leaderboards.published import list_tables, table_info
from dcbench.leaderboards.tables import KIND_PUBLISHED, Leaderboard
from dcbench.training.rundir import RunDir

PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("NMI", ("nmi_prev", "nmi_labels")),
    ("loss", ("clustering_loss", "train_loss")),
    ("clusters", ("n_nonempty",)),
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
    from matplotlib.backends.backend_agg import (
        FigureCanvasAgg,  # lazy: matplotlib is slow to import; only for figures
    )
    from matplotlib.figure import Figure  # lazy: matplotlib is slow to import; only for figures

    panels = [(name, [k for k in keys if k in log and log[k].notna().any()])
              for name, keys in PANELS]
    panels = [(name, keys) for name, keys in panels if keys]
    if not panels:
        return None
    figure = Figure(figsize=(4.2 * len(panels), 3.2), dpi=100)
    FigureCanvasAgg(figure)
    for i, (name, keys) in enumerate(panels):
        axes = figure.add_subplot(1, len(panels), i + 1)
        for key in keys:
            part = log[["epoch", key]].dropna()
            axes.plot(part["epoch"], part[key], marker="o", markersize=3, label=key)
        axes.set_title(name)
        axes.set_xlabel("epoch")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def run_curves(run_dirs: Sequence[str | Path]) -> list[tuple[str, str]]:
    """(label, base64 PNG) for each run directory that has curves to plot."""
    out = []
    for run_dir in run_dirs:
        png = plot_curves(read_log(run_dir), Path(run_dir).name)
        if png is not None:
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
