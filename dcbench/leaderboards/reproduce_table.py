"""The table `dcbench reproduce` ends with: the published rows, the model's row, the deltas.

The model's row holds exactly the rows of the plan's finished runs (by run id), so older
results of the same model in the store do not leak in; a column whose run did not run (no
data root, or a column about another architecture) reads "not run", never a number. Deltas
are against the published row that names the model (`dcbench_model`), else `--against
METHOD`, else the table's DeepCluster row (see `reference_row`). Rendered for the terminal
(fits 120 columns), Markdown, LaTeX and HTML with the leaderboard export code.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dcbench.core.errors import UserError
from dcbench.leaderboards.export import (
    display_frame,
    html_page,
    markdown_escape,
    to_html_table,
    to_latex,
    to_markdown,
)
from dcbench.leaderboards.published import TableInfo, load_published, parse_dcbench_model
from dcbench.leaderboards.reproduce import Plan
from dcbench.leaderboards.tables import KIND_PUBLISHED, Leaderboard, delta_column, std_column

NOT_RUN = "not run"


def reference_row(info: TableInfo, model: str, against: str | None) -> str | None:
    """The published method the model's deltas are computed against (None: its own row).

    `against` must name a row. Without it, a row whose `dcbench_model` names the model is
    used (the leaderboard's rule); otherwise the first row naming a catalog model that is
    DeepCluster (by method, then by model name), else the thesis's km-ImNet-Sob row, else the
    first DeepCluster row naming no model, else the first row naming any catalog model.
    """
    pub = load_published(info.id)
    if against:
        if against not in set(pub["method"]):
            raise UserError(f"--against {against!r}: no such row in {info.id}; rows: "
                            + ", ".join(pub["method"]))
        return against
    named = [parse_dcbench_model(v, info.value_columns) for v in pub["dcbench_model"]]
    if any(model in row.values() for row in named):
        return None
    candidates = [(m, row) for m, row in zip(pub["method"], named, strict=True) if row]
    for wanted in (lambda m, names: "deepcluster" in m.lower(),
                   lambda m, names: any(n.startswith("deepcluster") for n in names),
                   lambda m, names: "km-imnet-sob" in names):
        for method, row in candidates:
            if wanted(method, set(row.values())):
                return method
    unnamed = [m for m in pub["method"] if "deepcluster" in m.lower()]
    return unnamed[0] if unnamed else candidates[0][0] if candidates else None


def plan_results(results: pd.DataFrame, plan: Plan, run_ids: dict[str, str]) -> pd.DataFrame:
    """The rows of the plan's finished runs, their `dataset` set to the published one.

    A linear probe on `/data/ILSVRC2012-subset` labels its rows with the folder name; the
    plan knows which published dataset the root stands for.
    """
    parts = []
    for run in plan.runs:
        run_id = run_ids.get(run.name)
        if run_id is None:
            continue
        rows = results[results["run_id"] == run_id].copy()
        if len(set(run.datasets)) == 1:
            rows["dataset"] = run.datasets[0]
        parts.append(rows)
    if not parts:
        return results.iloc[0:0].copy()
    return pd.concat(parts, ignore_index=True)


def reproduce_frame(plan: Plan, rows: pd.DataFrame, model: str,
                    against: str | None) -> pd.DataFrame:
    """The merged table (leaderboard layout) with the not-run columns of our rows blanked."""
    info = plan.table
    reference = reference_row(info, model, against)
    board = Leaderboard(rows)
    names = sorted(set(board.results["model"]))  # the plan's rows: this model's display name
    frame = board.table(info.id, match={n: reference for n in names} if reference else None,
                        any_arch=names)
    ours = frame["kind"] != KIND_PUBLISHED
    for column in plan.not_run:
        for name in (column, std_column(column), delta_column(column)):
            frame.loc[ours, name] = np.nan
    return frame


def reproduce_display(frame: pd.DataFrame, plan: Plan) -> pd.DataFrame:
    """The readable view (strings) with "not run" in our rows' not-run cells."""
    display = display_frame(frame, plan.table)
    ours = (frame["kind"] != KIND_PUBLISHED).to_numpy()
    for column in plan.not_run:
        display.loc[ours, column] = NOT_RUN
    return display


def terminal_text(display: pd.DataFrame, plan: Plan, reference: str | None,
                  width: int = 120) -> str:
    """A plain-text table that fits `width` columns: means only (the files carry the std),
    headers over two lines where they hold a space, then one Δ line under each row of ours
    (model minus the reference row)."""
    info = plan.table
    has_kind = "kind" in display
    drop = {"kind", "seeds", "verified"} | {c for c in display if c.startswith("Δ ")}
    shown = [c for c in display.columns if c not in drop]
    numeric = [c in info.value_columns for c in shown]
    lines: list[list[str]] = []
    for _, row in display.iterrows():
        lines.append([str(row[c]).split(" ± ")[0] for c in shown])
        if has_kind and row["kind"] != KIND_PUBLISHED:
            delta = [str(row.get(delta_column(c), "")) if c in info.value_columns else ""
                     for c in shown]
            if any(delta):
                delta[0] = f"  Δ vs {reference}" if reference else "  Δ vs its own row"
                lines.append(delta)
    heads = [c.split(" ", 1) if num and " " in c else ["", c]
             for c, num in zip(shown, numeric, strict=True)]
    widths = [max(len(h[0]), len(h[1]), *(len(line[i]) for line in lines))
              for i, h in enumerate(heads)]
    others = sum(widths[1:]) + 2 * (len(shown) - 1)
    widths[0] = max(12, min(widths[0], width - others))

    def fit(text: str, w: int, left: bool) -> str:
        if len(text) <= w:
            return text.ljust(w) if left else text.rjust(w)
        return text[: w - 1] + "…" if not text.startswith("/") else "…" + text[-(w - 1):]

    def join(values: list[str]) -> str:
        return "  ".join(fit(v, w, not num) for v, w, num in zip(values, widths, numeric,
                                                                  strict=True)).rstrip()

    out = [join([h[0] for h in heads])] if any(h[0] for h in heads) else []
    out += [join([h[1] for h in heads]), "  ".join("-" * w for w in widths)]
    out += [join(line) for line in lines]
    return "\n".join(out) + "\n"


def render_formats(display: pd.DataFrame, plan: Plan, model: str,
                   notes: list[str]) -> dict[str, str]:
    """{"md": ..., "latex": ..., "html": ...} of the table, with a caption and the notes."""
    info = plan.table
    caption = f"{info.title} ({info.source}; unit {info.unit}); {model} reproduced"
    note_text = "; ".join(notes)
    md = f"**{info.id}**: {markdown_escape(caption)}\n\n" + to_markdown(display)
    if note_text:
        md += "\n" + "\n".join(f"- {markdown_escape(n)}" for n in notes) + "\n"
    latex = to_latex(display, caption + (f". {note_text}" if note_text else ""))
    html = html_page(f"dcbench reproduce: {info.id}",
                     [(info.id, caption + (f". {note_text}" if note_text else ""),
                       to_html_table(display))], curves=[])
    return {"md": md, "latex": latex, "html": html}
