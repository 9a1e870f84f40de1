"""Training curves from a run's `log.jsonl`: NMI, losses, cluster statistics, timings.

`dcbench train` appends one JSON object per finished epoch (see
`dcbench/training/deepcluster.py`): epoch, nmi_prev (NMI between consecutive assignments, the
thesis's stability curve), nmi_labels, clustering_loss, train_loss, n_clusters and the size
statistics, ratio_edge_intra_class, and features_s / clustering_s / train_s. Missing keys
only hide their curve (or panel), and a torn last line from an interrupted run is skipped.
Several runs can be overlaid (one colour per run).
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, MaxNLocator, NullFormatter, ScalarFormatter

from dcbench.core.errors import UserError
from dcbench.core.runlog import parse_log_records

LOG_NAME = "log.jsonl"
# Other spellings of the same quantity, renamed on read.
ALIASES = {"n_nonempty": "n_clusters", "clustering_time": "clustering_s"}


@dataclass(frozen=True)
class Panel:
    """One subplot: a title and the (log key, legend label) pairs drawn in it."""

    title: str
    series: tuple[tuple[str, str], ...]
    log_y: bool = False


PANELS: tuple[Panel, ...] = (
    Panel("NMI", (("nmi_prev", "t-1 vs t"), ("nmi_labels", "vs labels"))),
    Panel("ConvNet loss", (("train_loss", "cross-entropy"),)),
    Panel("clustering loss", (("clustering_loss", "k-means"),)),
    Panel("clusters", (("n_clusters", "non-empty"), ("n_singletons", "singletons"))),
    Panel("cluster size", (("size_min", "min"), ("size_median", "median"), ("size_max", "max")),
          log_y=True),
    Panel("largest cluster share", (("largest_share", "share"),)),
    Panel("ratio edge intra-class", (("ratio_edge_intra_class", "kNN graph"),)),
    Panel("time per epoch (s)", (("features_s", "features"), ("clustering_s", "clustering"),
                                 ("train_s", "training"))),
)


def log_path(run: str | os.PathLike) -> Path:
    """`run` itself if it is a file, else `run/log.jsonl`; UserError if neither exists."""
    path = Path(run).expanduser()
    if path.is_dir():
        path = path / LOG_NAME
    if not path.is_file():
        raise UserError(f"training log not found: {path} (no {LOG_NAME}; expected a training "
                        "run folder)")
    return path


def parse_log(text: str) -> pd.DataFrame:
    """JSON lines -> one row per epoch, sorted by epoch; unreadable lines are skipped.

    Rows without an integer `epoch` are dropped; a repeated epoch keeps its last record (a
    resumed run rewrites it).
    """
    records = [{ALIASES.get(k, k): v for k, v in record.items()}
               for record in parse_log_records(text) if isinstance(record.get("epoch"), int)]
    frame = pd.DataFrame.from_records(records)
    if frame.empty:
        return pd.DataFrame({"epoch": pd.Series([], dtype="int64")})
    frame = frame.drop_duplicates("epoch", keep="last").sort_values("epoch")
    return frame.reset_index(drop=True)


def read_curves(run: str | os.PathLike) -> pd.DataFrame:
    """The epoch table of a run folder (or a log.jsonl path); UserError if it has no epochs."""
    path = log_path(run)
    frame = parse_log(path.read_text(encoding="utf-8", errors="replace"))
    if frame.empty:
        raise UserError(f"{path} holds no finished epoch yet")
    return frame


def numeric(frame: pd.DataFrame, key: str) -> pd.Series | None:
    """Column `key` as floats (None/strings -> NaN), or None when absent or all missing."""
    if key not in frame:
        return None
    values = pd.to_numeric(frame[key], errors="coerce")
    return None if values.isna().all() else values


def available_panels(frames: dict[str, pd.DataFrame]) -> list[Panel]:
    """The panels with at least one value to draw in at least one run."""
    return [
        p for p in PANELS
        if any(numeric(f, key) is not None for f in frames.values() for key, _ in p.series)
    ]


def curves_figure(frames: dict[str, pd.DataFrame], columns: int = 3) -> Figure:
    """A grid of panels (see PANELS) over epochs; runs are colours, series are line styles."""
    panels = available_panels(frames)
    if not panels:
        raise UserError("the log has no curve to draw (no known numeric key)")
    cols = min(columns, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(4.2 * cols, 3.0 * rows), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    styles = ("-", "--", ":", "-.")
    colors = [f"C{i % 10}" for i in range(len(frames))]
    for slot, panel in enumerate(panels):
        ax = fig.add_subplot(rows, cols, slot + 1)
        for color, (run, frame) in zip(colors, frames.items(), strict=True):
            for index, (key, label) in enumerate(panel.series):
                style = styles[index % len(styles)]
                values = numeric(frame, key)
                if values is None:
                    continue
                name = label if len(frames) == 1 else f"{run}: {label}"
                ax.plot(frame["epoch"], values, style, color=color, marker=".", label=name)
        ax.set_title(panel.title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if panel.log_y:
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(ScalarFormatter())  # 30, not 3 x 10^1
            ax.yaxis.set_minor_formatter(NullFormatter())
        else:
            ax.ticklabel_format(axis="y", useOffset=False)  # 4.6245, not +4.624 / 0.0005
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    fig.suptitle(f"DeepCluster training: {', '.join(frames)}")
    return fig


def figure_png(fig: Figure) -> bytes:
    """Render a matplotlib figure to PNG bytes (no metadata, so the bytes are reproducible)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def run_label(run: str | os.PathLike) -> str:
    """A short legend name: the run folder's name (or the log file's folder)."""
    path = Path(run).expanduser().resolve()
    return path.parent.name if path.is_file() else path.name
