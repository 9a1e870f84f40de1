"""A self-contained HTML report of the user's work, to share: a summary first, then the
details, the published rows they can be compared with, and their training curves.

Order of the page: the claim verdicts a demo recorded (when given), a summary (each
protocol's headline metric on its evaluation split: VOC mAP, top-1, NMI...), one section
per protocol and dataset (per-class rows folded in a <details>), the published tables,
the training curves. Models are shown under their display names (`identity`); a trained
model's Δ is against the random init of the *same architecture* only, and the caption says
which. Captions say "mean ± std over N seeds" only where some cell has several seeds.

Which results: those of the given eval run ids (the demo passes its own), else those of
the given models or of the models trained in the given run dirs (by weights sha256) plus
the rows evaluated with them (e.g. low-shot's random init) and the random baselines on the
same protocol and dataset, else every result in the store.

Training curves come from `RUN_DIR/log.jsonl` through `dcbench.viz.curves` (one panel per
quantity; missing keys and a torn last line are tolerated), drawn with matplotlib's Agg
canvas (no display, no global pyplot state) and inlined as base64.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from dcbench.core.errors import UserError
from dcbench.core.state_files import try_read_json_object
from dcbench.leaderboards.export import display_frame, html_page, to_html_table
from dcbench.leaderboards.identity import (
    KEY_COLUMN,
    RANDOM_COLUMN,
    resolve_models,
    with_architectures,
)
from dcbench.leaderboards.paired_table import tests_note
from dcbench.leaderboards.published import TableInfo, list_tables, table_info
from dcbench.leaderboards.run_tables import protocol_tables, split_detail
from dcbench.leaderboards.tables import KIND_OURS, KIND_PUBLISHED, Leaderboard, delta_column
from dcbench.viz.curves import available_panels, curves_figure, figure_png, log_path, parse_log

PROTOCOL_TITLES = {
    "linear-conv": "Linear probes on frozen conv layers", "mlp": "MLP on frozen conv layers",
    "knn": "Weighted k-NN classification", "knn-graph": "k-NN graph: intra-class edge ratio",
    "nmi": "k-means NMI against the labels", "low-shot": "Low-shot fine-tuning",
    "voc07-cls": "PASCAL VOC07 classification", "voc07-det": "PASCAL VOC07 detection",
    "voc12-seg": "PASCAL VOC12 segmentation", "voc07-svm": "VOC07 linear SVMs",
    "voc07-lowshot-svm": "VOC07 low-shot SVMs", "retrieval": "Instance retrieval (R-MAC)",
}
# The number each protocol is judged by (the summary's row); others fall back to the first.
HEADLINE = {
    "linear-conv": "top1", "mlp": "top1", "knn": "top1", "knn-graph": "ratio_edge_intra_class",
    "nmi": "nmi", "low-shot": "top1_mean", "voc07-cls": "map", "voc07-det": "map",
    "voc12-seg": "miou", "voc07-svm": "map", "voc07-lowshot-svm": "map", "retrieval": "map",
}
EVAL_SPLITS = ("test", "val")
CLAIMS_FILE = "claims.json"  # written by `dcbench demo` next to its runs/ folder


def run_curves(run_dirs: Sequence[str | Path]) -> list[tuple[str, str]]:
    """(label, base64 PNG) for each run directory that has curves to plot."""
    out = []
    for run_dir in run_dirs:
        text = log_path(run_dir).read_text(encoding="utf-8", errors="replace")
        frames = {Path(run_dir).name: parse_log(text)}  # no finished epoch yet: no figure
        if available_panels(frames):
            png = figure_png(curves_figure(frames))
            out.append((Path(run_dir).name, base64.b64encode(png).decode("ascii")))
    return out


def select_results(results: pd.DataFrame, run_dirs: Sequence[str | Path] = (),
                   eval_runs: Sequence[str] = (), models: Sequence[str] = ()) -> pd.DataFrame:
    """The rows a report is about (see the module docstring)."""
    if eval_runs:
        return results[results.run_id.isin(list(eval_runs))]
    results = with_architectures(results)
    shas = {sha for run in run_dirs for sha in run_weights_sha256(run)}
    keys = set(resolve_models(results, list(models))) if models else set()
    if not shas and not keys:
        return results
    mine = results[results.model_sha256.isin(shas) | results[KEY_COLUMN].isin(keys)]
    with_them = results.run_id.isin(set(mine.run_id))
    cells = set(zip(mine.protocol, mine.dataset, strict=True))
    same_cell = pd.Series([c in cells for c in zip(results.protocol, results.dataset,
                                                   strict=True)], index=results.index)
    return results[with_them | (same_cell & results[RANDOM_COLUMN])]


def run_weights_sha256(run_dir: str | Path) -> set[str]:
    """The weights hashes recorded in a training run's hub folders (final, checkpoints)."""
    shas = set()
    for config in Path(run_dir).glob("**/config.json"):
        sha = (try_read_json_object(config) or {}).get("weights_sha256")
        if sha:
            shas.add(str(sha))
    return shas


def read_claims(path: str | Path) -> list[dict]:
    """Claim verdicts (`[{"text", "holds", "evidence"}]`, as `dcbench demo` writes them)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read claims file {path}: {err}") from err
    if not isinstance(data, list) or not all(
            isinstance(c, dict) and isinstance(c.get("text"), str)
            and isinstance(c.get("holds"), bool) for c in data):
        raise UserError(f"{path}: expected a JSON list of {{text, holds, evidence}} objects")
    return data


def demo_claims(run_dirs: Sequence[str | Path]) -> list[dict]:
    """The claims a demo recorded, when the run dirs sit in a demo folder (DEMO/runs/NAME)."""
    for run_dir in run_dirs:
        candidate = Path(run_dir).resolve().parent.parent / CLAIMS_FILE
        if candidate.is_file():
            return read_claims(candidate)
    return []


def section_title(name: str) -> str:
    """`knn on digits` -> `Weighted k-NN classification on digits`."""
    protocol, _, dataset = name.partition(" on ")
    return f"{PROTOCOL_TITLES.get(protocol, protocol)} on {dataset}" if dataset else name


def _anchor(prefix: str, name: str) -> str:
    return prefix + "-" + "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


def _seeds_text(seeds: int) -> str:
    return (f"cells are mean ± std over up to {seeds} seeds (or draws)" if seeds > 1
            else "one seed per cell (no std)")


def _pairing_text(table: pd.DataFrame) -> str:
    baselines = table.attrs.get("baselines", {})
    arch = table.attrs.get("architectures", {})
    randoms = set(table.attrs.get("randoms", []))
    parts = [f"Δ {m} = {m} − {b} (random init of the same architecture, {arch.get(m)})"
             for m, b in baselines.items()]
    for model, known in arch.items():
        if model in randoms or model in baselines:
            continue
        why = (f"no random init of {known} here" if known else
               "its architecture is unknown (no config.json or catalog entry)")
        parts.append(f"{model}: no Δ, {why}")
    return "; ".join(parts)


def protocol_sections(ours: pd.DataFrame, refs: pd.DataFrame | None = None
                      ) -> tuple[list[tuple[str, ...]], pd.DataFrame]:
    """(one section per protocol and dataset, the summary frame of their headline rows);
    `refs`: the store's per-item outcome references (paired intervals of the deltas)."""
    sections: list[tuple[str, ...]] = []
    summary = []
    for name, table in protocol_tables(ours, refs):
        main, detail = split_detail(table)
        tests = table.attrs.get("tests", 0)
        caption = "; ".join(t for t in (_seeds_text(table.attrs.get("seeds", 1)),
                                        _pairing_text(table),
                                        tests_note(tests, False) if tests else "") if t)
        body = to_html_table(main)
        if not detail.empty:
            body = (f"<div class=\"scroll\">{body}</div><details><summary>per-class detail "
                    f"({len(detail)} rows)</summary><div class=\"scroll\">"
                    f"{to_html_table(detail)}</div></details>")
        sections.append((_anchor("results", name), section_title(name), caption, body))
        protocol = name.partition(" on ")[0]
        head = _headline(main, protocol)
        if not head.empty:
            head.insert(0, "protocol", section_title(name))
            summary.append(head)
    if not summary:
        return sections, pd.DataFrame()
    frame = pd.concat(summary, ignore_index=True).fillna("")
    labels = ["protocol", "dataset", "split", "layer", "metric"]
    deltas = [c for c in frame.columns if c.startswith("Δ ")]
    models = [c for c in frame.columns if c not in labels and c not in deltas]
    return sections, frame[[c for c in labels if c != "dataset"] + models + deltas]


def _headline(main: pd.DataFrame, protocol: str) -> pd.DataFrame:
    """The rows of `protocol`'s headline metric on its evaluation split."""
    if main.empty:
        return main
    metric = HEADLINE.get(protocol)
    if metric not in set(main["metric"]):
        metric = main["metric"].iloc[0]
    rows = main[main["metric"] == metric]
    for split in EVAL_SPLITS:
        if (rows["split"] == split).any():
            return rows[rows["split"] == split].copy()
    return rows.copy()


def _claims_html(claims: Sequence[dict]) -> str:
    items = []
    for claim in claims:
        # "verdict": holds / does not hold / undecided at this size (paired intervals)
        words = str(claim.get("verdict") or ("holds" if claim["holds"] else "does NOT hold"))
        verdict = (f"<span class=\"{'holds' if claim['holds'] else 'fails'}\">"
                   f"{html.escape(words)}</span>")
        evidence = html.escape(str(claim.get("evidence", "")))
        items.append(f"<li>[{verdict}] {html.escape(claim['text'])}"
                     + (f": {evidence}" if evidence else "") + "</li>")
    return f"<ul class=\"claims\">{''.join(items)}</ul>"


def published_caption(info: TableInfo, frame: pd.DataFrame) -> tuple[str, str]:
    """(caption, note) of a published table merged with our rows, saying honestly whether
    any of ours is comparable and whether a Δ was computed (note "" when some is)."""
    caption = f"{info.source}; unit {info.unit}"
    comparable = frame[frame["kind"] == KIND_OURS]
    others = frame[(frame["kind"] != KIND_OURS) & (frame["kind"] != KIND_PUBLISHED)]
    deltas = [delta_column(c) for c in info.value_columns if delta_column(c) in frame]
    has_delta = bool(len(comparable)) and bool(comparable[deltas].notna().any().any())
    if len(comparable):
        caption += (f"; {len(comparable)} row(s) of yours measured like it (protocol, "
                    "dataset, layer, dialect)")
        caption += ("; Δ = yours − the published row of the same model" if has_delta else
                    "; no published row is of the same model, so no Δ")
        return caption, ""
    measured = sorted({f"{s.protocol} on {s.dataset}" for s in info.columns if s.matchable})
    note = ("No result of yours is comparable with this table"
            + (f" (it is measured as {', '.join(measured)})" if measured else "")
            + (f"; {len(others)} row(s) of yours use another dialect or an older config"
               if len(others) else "")
            + ": shown for orientation only, no Δ is computed.")
    return caption, note


def build_report(leaderboard: Leaderboard, table_names: Sequence[str] | None = None,
                 run_dirs: Sequence[str | Path] = (), title: str = "dcbench report",
                 eval_runs: Sequence[str] = (), models: Sequence[str] = (),
                 claims: Sequence[dict] | None = None) -> str:
    """The HTML report (see the module docstring); `claims` default to a demo's own."""
    curves = run_curves(run_dirs)  # validate run dirs before the (slower) tables
    claims = list(claims) if claims is not None else demo_claims(run_dirs)
    ours = select_results(leaderboard.results, run_dirs, eval_runs, models)
    sections: list[tuple[str, ...]] = []
    if claims:
        held = sum(bool(c["holds"]) for c in claims)
        open_ = sum(str(c.get("verdict", "")).startswith("undecided") for c in claims)
        sections.append(("claims", "Claims checked on these measurements",
                         f"{held} of {len(claims)} hold"
                         + (f", {open_} undecided at this size" if open_ else "")
                         + ", as the demo measured them",
                         _claims_html(claims)))
    details, summary = protocol_sections(ours, getattr(leaderboard, "outcome_refs", None))
    if not summary.empty:
        sections.append(("summary", "Summary",
                         "each protocol's headline number on its evaluation split; Δ = "
                         "trained minus the random init of the same architecture (which one: "
                         "see each section); per-layer and per-class detail below",
                         to_html_table(summary)))
    sections += details
    board = Leaderboard(ours) if len(ours) else leaderboard
    if table_names:
        infos = [table_info(name) for name in table_names]
        merged = [(info, board.table(info.id)) for info in infos]
    else:
        candidates = [(info, board.table(info.id)) for info in list_tables() if info.matchable]
        merged = [(i, f) for i, f in candidates if (f["kind"] == KIND_OURS).any()]
    for info, frame in merged:
        caption, note = published_caption(info, frame)
        note = f"<p class=\"note\">{html.escape(note)}</p>" if note else ""
        sections.append((_anchor("published", info.id), f"Published: {info.title}",
                         f"{info.id}: {caption}",
                         note + f"<div class=\"scroll\">"
                                f"{to_html_table(display_frame(frame, info))}</div>"))
    if not sections:
        sections.append(("results", "No results yet",
                         "run `dcbench eval` (or `dcbench demo`)", ""))
    return html_page(title, sections, curves)
