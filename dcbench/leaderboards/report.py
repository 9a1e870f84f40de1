"""A self-contained HTML report: leaderboard tables plus training curves as embedded PNGs.

Training curves come from `RUN_DIR/log.jsonl` (one JSON object per epoch, keys such as
epoch, clustering_loss, train_loss, nmi_prev, nmi_labels, n_nonempty,
ratio_edge_intra_class; missing keys and a torn last line are tolerated). Plots are drawn
with matplotlib's Agg canvas (no display, no global pyplot state) and inlined as base64.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from dcbench.errors import UserError
from dcbench.leaderboards.published import list_tables, table_info
from dcbench.leaderboards.tables import KIND_PUBLISHED, Leaderboard

PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("NMI", ("nmi_prev", "nmi_labels")),
    ("loss", ("clustering_loss", "train_loss")),
    ("clusters", ("n_nonempty",)),
    ("ratio edge intra-class", ("ratio_edge_intra_class",)),
)
CURVE_KEYS = tuple(key for _, keys in PANELS for key in keys)

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; }
p.caption { color: #555; margin: 0.2em 0 0.8em; }
table.leaderboard { border-collapse: collapse; font-size: 0.9em; }
table.leaderboard th, table.leaderboard td { padding: 3px 9px; border-bottom: 1px solid #ddd;
  text-align: right; white-space: nowrap; }
table.leaderboard th:first-child, table.leaderboard td:first-child { text-align: left; }
table.leaderboard thead th { border-bottom: 2px solid #444; }
tr.ours { background: #eef6ff; font-weight: 600; }
tr.unverified td { color: #a05a00; font-style: italic; }
figure { margin: 1em 0; } figcaption { color: #555; font-size: 0.9em; }
"""


def read_log(run_dir: str | Path) -> pd.DataFrame:
    """The numeric training curves of a run (`log.jsonl`), one row per logged epoch."""
    path = Path(run_dir) / "log.jsonl"
    if not path.is_file():
        raise UserError(f"{run_dir}: no log.jsonl; expected a training run directory")
    from dcbench.training.rundir import RunDir

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
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

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


def html_page(title: str, tables: Sequence[tuple[str, str, str]],
              curves: Sequence[tuple[str, str]]) -> str:
    """A standalone HTML page from (id, caption, table html) and (label, base64 png) parts."""
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    for table_id, caption, table_html in tables:
        parts.append(f"<h2 id=\"{html.escape(table_id)}\">{html.escape(table_id)}</h2>")
        parts.append(f"<p class=\"caption\">{html.escape(caption)}</p>{table_html}")
    if curves:
        parts.append("<h2>Training curves</h2>")
    for label, png in curves:
        parts.append(f"<figure><img alt=\"training curves of {html.escape(label)}\" "
                     f"src=\"data:image/png;base64,{png}\"><figcaption>"
                     f"{html.escape(label)}</figcaption></figure>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def build_report(leaderboard: Leaderboard, table_names: Sequence[str] | None = None,
                 run_dirs: Sequence[str | Path] = (), title: str = "dcbench report") -> str:
    """The HTML report: the named tables (default: those holding our results, else all
    matchable ones) with our rows merged in, then the training curves of `run_dirs`."""
    from dcbench.leaderboards.export import display_frame, to_html_table

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
