"""Turn a merged leaderboard DataFrame into Markdown, CSV, LaTeX or HTML.

CSV keeps every column (numbers unrounded, std and delta separate) for machines. The other
formats show a readable view: `mean ± std` cells, signed deltas, and the columns that say
where a number comes from (`kind`, `verified`).
"""

from __future__ import annotations

import html
import math
import os
import re
import textwrap
from collections.abc import Sequence

import pandas as pd

from dcbench.core.errors import UserError, did_you_mean
from dcbench.core.files import write_text
from dcbench.leaderboards.published import TableInfo
from dcbench.leaderboards.run_tables import decimals, short_names
from dcbench.leaderboards.tables import KIND_PUBLISHED, delta_column, std_column

FORMATS = ("md", "csv", "latex", "html")

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; }
p.caption { color: #555; margin: 0.2em 0 0.8em; }
table.leaderboard { border-collapse: collapse; font-size: 0.9em; }
table.leaderboard th, table.leaderboard td { padding: 3px 9px; border-bottom: 1px solid #ddd;
  text-align: right; white-space: nowrap; }
table.leaderboard th:first-child, table.leaderboard td:first-child { text-align: left; }
table.leaderboard td.text { text-align: left; }
figure img { max-width: 100%; }
table.leaderboard thead th { border-bottom: 2px solid #444; }
tr.ours { background: #eef6ff; font-weight: 600; }
tr.unverified td { color: #a05a00; font-style: italic; }
figure { margin: 1em 0; } figcaption { color: #555; font-size: 0.9em; }
div.scroll { overflow-x: auto; max-width: 100%; }
details { margin: 0.6em 0; } details summary { cursor: pointer; color: #345; }
p.note { background: #fff7e0; border-left: 4px solid #e0a800; padding: 0.4em 0.8em; }
ul.claims li { margin: 0.3em 0; } span.holds { color: #1a7f37; font-weight: 600; }
span.fails { color: #b3261e; font-weight: 600; } span.anchor { color: #888; font-size: 0.8em; }
"""



def format_number(value: float) -> str:
    """Up to two decimals, at least one: 41.0, 37.88, 41.2 ('' for NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    text = f"{float(value):.2f}"
    return text[:-1] if text.endswith("0") else text


def format_delta(value: float) -> str:
    """A signed delta, e.g. +0.4 / -1.4 ('' for NaN)."""
    text = format_number(value)
    return text if not text or text.startswith("-") else f"+{text}"


def display_frame(frame: pd.DataFrame, info: TableInfo) -> pd.DataFrame:
    """The readable view of a merged table: strings, mean ± std, deltas, provenance flags."""
    has_ours = bool((frame["kind"] != KIND_PUBLISHED).any())
    value_cols = set(info.value_columns)
    labels = [c for c in frame.columns
              if c not in value_cols and c not in ("method", "kind")
              and not c.endswith(" ±") and not c.startswith("Δ ")
              and c not in ("seeds", "dialect", "config_hash", "model", "model_sha256",
                            "dcbench_model", "source", "table", "verified", "notes")]
    out = pd.DataFrame({"method": frame["method"]})
    if has_ours:
        out["kind"] = frame["kind"]
    for column in labels:
        out[column] = frame[column].fillna("").astype(str)
    for column in info.value_columns:
        std = frame[std_column(column)]
        out[column] = [
            format_number(v) + (f" ± {format_number(s)}" if not pd.isna(s) else "")
            for v, s in zip(frame[column], std, strict=True)
        ]
        deltas = frame[delta_column(column)]
        if deltas.notna().any():
            out[delta_column(column)] = [format_delta(v) for v in deltas]
    if has_ours:
        out["seeds"] = [("" if pd.isna(v) else str(int(v))) for v in frame["seeds"]]
    out["verified"] = frame["verified"].fillna("")
    return out.reset_index(drop=True)


def to_markdown(display: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no `tabulate` dependency)."""
    def cell(value: object) -> str:
        return markdown_escape(str(value)).replace("|", "\\|").replace("\n", " ")

    header = [cell(c) for c in display.columns]
    body = [[cell(v) for v in row] for row in display.itertuples(index=False)]
    widths = [max([len(h), *(len(r[i]) for r in body)]) for i, h in enumerate(header)]
    numeric = [all(_looks_numeric(r[i]) for r in body) for i in range(len(header))]

    def line(values: list[str]) -> str:
        padded = [v.rjust(w) if num else v.ljust(w)
                  for v, w, num in zip(values, widths, numeric, strict=True)]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if num else ("-" * (w + 2))
                          for w, num in zip(widths, numeric, strict=True)) + "|"
    return "\n".join([line(header), rule, *(line(r) for r in body)]) + "\n"


def markdown_escape(text: str) -> str:
    """Text for a Markdown file: no raw HTML (`<svg onload=...>` in a model name shows as
    text, as in the HTML report) and no link syntax (brackets are escaped where the text
    holds `](` or `][`; an interval `[-1.2, +3.4]` reads as it is); `&`, `<`, `>` become
    entities."""
    # `&` and `>` always; `<` where it could open a tag (`<svg`, `</`, `<!`), so that a
    # p-value `p=<1e-4` prints as it is in a terminal
    text = re.sub(r"<(?=[A-Za-z/!?])", "&lt;",
                  text.replace("&", "&amp;").replace(">", "&gt;"))
    if "](" not in text and "][" not in text:
        return text
    return text.replace("[", "\\[").replace("]", "\\]")


def _looks_numeric(text: str) -> bool:
    head = text.split(" ± ")[0]
    if not head:
        return True
    try:
        float(head)
    except ValueError:
        return False
    return True


def to_latex(display: pd.DataFrame, caption: str) -> str:
    """A booktabs LaTeX table (special characters escaped; ± and Δ in math mode)."""
    styler = display.style.hide(axis="index").format(lambda v: _latex_escape(str(v)))
    styler = styler.format_index(lambda v: _latex_escape(str(v)), axis=1)
    align = "".join("r" if all(_looks_numeric(str(v)) for v in display[c]) else "l"
                    for c in display.columns)
    text = styler.to_latex(hrules=True, caption=_latex_escape(caption), column_format=align)
    return text.replace("±", r"$\pm$").replace("Δ", r"$\Delta$")


LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                 "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                 "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}"}


def _latex_escape(text: str) -> str:
    """Every LaTeX special character as text, in one pass (a backslash's replacement keeps
    its braces)."""
    return "".join(LATEX_SPECIAL.get(char, char) for char in text)


def to_html_table(display: pd.DataFrame) -> str:
    """An HTML <table> (escaped), with our rows and unverified rows marked by CSS classes."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in display.columns)
    rows = []
    for row in display.to_dict("records"):
        classes = []
        if str(row.get("kind", KIND_PUBLISHED)) != KIND_PUBLISHED:
            classes.append("ours")
        if row.get("verified") == "no":
            classes.append("unverified")
        cells = "".join(
            f"<td>{html.escape(str(v))}</td>" if _looks_numeric(str(v).lstrip("+"))
            else f"<td class=\"text\">{html.escape(str(v))}</td>" for v in row.values())
        attr = f' class="{" ".join(classes)}"' if classes else ""
        rows.append(f"<tr{attr}>{cells}</tr>")
    return (f"<table class=\"leaderboard\"><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def render(frame: pd.DataFrame, info: TableInfo, fmt: str) -> str:
    """The merged table in format `fmt` (md, csv, latex, html)."""
    if fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r}; " + did_you_mean(fmt, list(FORMATS)))
    if fmt == "csv":
        return frame.to_csv(index=False)
    display = display_frame(frame, info)
    caption = f"{info.title} ({info.source}; unit {info.unit})"
    if fmt == "md":
        return f"**{info.id}**: {caption}\n\n" + to_markdown(display)
    if fmt == "latex":
        return to_latex(display, caption)

    return html_page(f"dcbench leaderboard: {info.id}",
                     [(info.id, caption, to_html_table(display))], curves=[])


def write_output(text: str, output: str | os.PathLike | None) -> None:
    """Print `text`, or write it atomically to `output`."""
    if output is None:
        print(text, end="" if text.endswith("\n") else "\n")
    else:
        write_text(output, text)


def compare_display(frame: pd.DataFrame, models: list[str], wide: bool = False) -> pd.DataFrame:
    """Readable view of `Leaderboard.compare`: one `mean ± std` column per model, deltas.

    Values and deltas of a row share one precision (3 decimals for scores in [0, 1], else
    1). Headers use short model names (`legend` maps them back); `wide` keeps every column
    (dialect, counts) and the full names.
    """
    labels = {m: m for m in models} if wide else short_names(models)
    cell = ["protocol", "dialect", "dataset", "split", "layer", "metric"]
    out = frame[cell if wide else [c for c in cell if c != "dialect"]].copy()
    places = [decimals(row) for row in frame[models].to_numpy(dtype=float)]
    for model in models:
        out[labels[model]] = [
            "" if pd.isna(v) else f"{v:.{d}f}" + (f" ± {s:.{d}f}" if not pd.isna(s) else "")
            for v, s, d in zip(frame[model], frame[std_column(model)], places, strict=True)]
        if wide:
            out[f"n {model}"] = frame[f"n {model}"].astype(str)
    for model in models[1:]:
        out[delta_column(labels[model])] = [
            "" if pd.isna(v) else f"{v:+.{d}f}"
            for v, d in zip(frame[delta_column(model)], places, strict=True)]
        if ci_column(model) in frame:  # the paired interval (leaderboards.paired_table)
            out[ci_column(labels[model])] = frame[ci_column(model)].tolist()
    return out


def ci_column(model: str) -> str:
    """The column holding `model`'s delta with its 95% paired interval and p."""
    return f"Δ 95% CI, p {model}"


def compare_legend(models: list[str]) -> str:
    """`short = full name` lines for the models whose header was shortened."""
    labels = short_names(models)
    return "\n".join(f"  {labels[m]} = {m}" for m in models if labels[m] != m)


def render_compare(frame: pd.DataFrame, models: list[str], fmt: str, wide: bool = False,
                   note: str = "") -> str:
    """The comparison of `models` in format `fmt` (md, csv, latex, html); `note` (how the
    intervals were made) follows the head (md) or caption."""
    if fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r}; " + did_you_mean(fmt, list(FORMATS)))
    if fmt == "csv":
        return frame.to_csv(index=False)
    display = compare_display(frame, models, wide=wide)
    caption = "comparison of " + ", ".join(models) + " on every result cell they share"
    caption += f" ({note})" if note else ""
    if fmt == "md":
        legend = "" if wide else compare_legend(models)
        head = f"**compare**: Δ = model minus {short_names(models)[models[0]]}"
        head += "\n" + textwrap.fill(note, 100) if note else ""
        if not wide:  # a label column with one value becomes a note (saves width)
            fixed = [c for c in ("protocol", "dataset", "split", "layer", "metric")
                     if display[c].nunique() == 1]
            if fixed:
                head += "\nevery row: " + ", ".join(f"{c} {display[c].iloc[0]}" for c in fixed)
                display = display.drop(columns=fixed)
        return head + (f"\n{legend}" if legend else "") + "\n\n" + to_markdown(display)
    if fmt == "latex":
        return to_latex(display, caption)

    return html_page("dcbench compare", [("compare", caption, to_html_table(display))], [])


def html_page(title: str, tables: Sequence[tuple[str, ...]],
              curves: Sequence[tuple[str, str]]) -> str:
    """A standalone HTML page from sections and (label, base64 png) curves.

    A section is (id, caption, body html), its heading the id, or (id, heading, caption,
    body html) with a readable heading; bodies are trusted HTML, the rest is escaped.
    """
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    for section in tables:
        table_id, heading, caption, table_html = (
            section if len(section) == 4 else (section[0], section[0], *section[1:]))
        parts.append(f"<h2 id=\"{html.escape(table_id)}\">{html.escape(heading)}</h2>")
        if caption:
            parts.append(f"<p class=\"caption\">{html.escape(caption)}</p>")
        parts.append(f"<div class=\"scroll\">{table_html}</div>" if table_html.startswith(
            "<table") else table_html)
    if curves:
        parts.append("<h2>Training curves</h2>")
    for label, png in curves:
        parts.append(f"<figure><img alt=\"training curves of {html.escape(label)}\" "
                     f"src=\"data:image/png;base64,{png}\"><figcaption>"
                     f"{html.escape(label)}</figcaption></figure>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
