"""Published tables with our results merged in, as pandas DataFrames (for the CLI and notebooks).

Matching rule: a table's rows share an architecture (`index.csv` arch; catalog models of
another architecture are kept out, other models are let in). A published column maps to
one result cell (protocol, dataset, split, layer, metric; see `published/columns.csv`; a
blank split matches any split; dataset folder names such as ILSVRC2012 are aliased). Our
rows are grouped by (model, model_sha256, dialect). Within each cell, the results of the
most recent config hash are *current*; rows with an older config hash are *stale* and
shown on their own row, never averaged with current ones. A row is *comparable* when it is
current and has the table's dialect; only comparable rows get a delta, computed against
the published row whose `dcbench_model` names the same model (or one named with
`match=`). Several seeds (or repeated runs) of one cell give mean and sample std (ddof=1).

A model is its weights (`identity.identify`): rows of the same sha256 stored under
different names or paths are one model, shown under one display name.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path

import numpy as np
import pandas as pd

from dcbench.core.errors import UserError
from dcbench.core.home import results_store_path
from dcbench.core.rows import RESULT_FIELDS
from dcbench.leaderboards.identity import (
    KEY_COLUMN,
    display_name,
    identify,
    resolve_model,
    resolve_models,
    with_architectures,
)
from dcbench.leaderboards.published import (
    PROVENANCE_COLUMNS,
    TableInfo,
    canonical_dataset,
    list_tables,
    load_published,
    parse_dcbench_model,
    table_info,
)
from dcbench.leaderboards.store import ResultsStore
from dcbench.models.sources import catalog

KIND_PUBLISHED = "published"
KIND_OURS = "ours"
KIND_STALE = "ours (stale config)"
KIND_OTHER_DIALECT = "ours (other dialect)"
CELL = ["protocol", "dataset", "split", "layer", "metric"]


def std_column(column: str) -> str:
    """Name of the column holding the seed std of `column`."""
    return f"{column} ±"


def delta_column(column: str) -> str:
    """Name of the column holding ours minus published for `column`."""
    return f"Δ {column}"


class Leaderboard:
    """Published tables next to stored results: `.table(name)`, `.compare(models)`."""

    def __init__(self, results: pd.DataFrame | None = None,
                 runs: pd.DataFrame | None = None) -> None:
        frame = results if results is not None else pd.DataFrame(columns=list(RESULT_FIELDS))
        missing = [f for f in RESULT_FIELDS if f not in frame]
        if missing:
            raise UserError(f"results frame lacks columns {missing}")
        self.results = with_architectures(identify(frame), runs)
        self.outcome_refs: pd.DataFrame | None = None  # set by from_store

    @classmethod
    def from_store(cls, path: str | os.PathLike | None = None) -> Leaderboard:
        """Read every result from the store at `path` (default: the dcbench home store).

        A missing default store means no results yet; a missing explicit `path` is an
        error (most likely a typo), and neither creates a file.
        """
        if path is None:

            if not results_store_path().exists():
                return cls()
        elif not Path(path).exists():
            raise UserError(f"no results store at {path}")
        store = ResultsStore(path)
        board = cls(store.results(), store.runs())
        board.outcome_refs = store.outcome_refs()  # per-item outcomes: paired intervals
        return board

    def model_name(self, spec: str) -> str:
        """The display name of the model `spec` names (name, path, sha256 prefix)."""
        return display_name(self.results, resolve_model(self.results, spec))

    def model_names(self, specs: list[str]) -> list[str]:
        """The display names of the models `specs` name (the column labels of `compare`)."""
        return [display_name(self.results, key) for key in resolve_models(self.results, specs)]

    def tables(self) -> pd.DataFrame:
        """One line per published table: id, title, source, dialect, rows, matchable."""
        return pd.DataFrame(
            [{"id": t.id, "title": t.title, "source": t.source, "dialect": t.dialect,
              "rows": len(load_published(t.id)), "matchable": t.matchable}
             for t in list_tables()]
        )

    def published(self, name: str) -> pd.DataFrame:
        """The published table `name` as shipped (value columns float)."""
        return load_published(name)

    def table(self, name: str, results: bool = True,
              match: dict[str, str] | None = None,
              any_arch: Collection[str] = ()) -> pd.DataFrame:
        """The published table with our rows merged in, with std and delta columns.

        `match` maps a model (name, path or sha256 prefix) to a published method whose row
        it should be compared with (e.g. `{"my-model": "DeepCluster"}`), on top of the
        `dcbench_model` column.
        `any_arch` names catalog models kept even when their architecture is not the
        table's (`dcbench reproduce` of an AlexNet table with alexnet_small).
        """
        if results and match:
            match = {self.model_name(model): method for model, method in match.items()}
        info = table_info(name)
        pub = load_published(name)
        pub.insert(1, "kind", KIND_PUBLISHED)
        pub["dialect"] = info.dialect
        owners = _column_owners(info, pub, match or {})
        ours = self._our_rows(info, pub, owners, any_arch) if results else pd.DataFrame()
        for column in info.value_columns:
            pub[std_column(column)] = np.nan
            pub[delta_column(column)] = np.nan
        pub["seeds"] = pd.array([pd.NA] * len(pub), dtype="Int64")
        if ours.empty:
            return _order_columns(pub, info)
        return _order_columns(_interleave(pub, ours), info)

    def _our_rows(self, info: TableInfo, pub: pd.DataFrame,
                  owners: dict[str, dict[str, int]], any_arch: Collection[str] = ()
                  ) -> pd.DataFrame:
        placed = _place(self.results, info, owners, any_arch)
        if placed.empty:
            return pd.DataFrame()
        placed = _mark_stale(placed)
        group = ["model", "model_sha256", "dialect", "status", "row_config"]
        shas = placed.groupby("model")["model_sha256"].nunique()
        rows = []
        for keys, frame in placed.groupby(group, sort=True):
            model, sha, dialect, status, row_config = keys
            comparable = status == "current" and dialect == info.dialect
            kind = (KIND_OURS if comparable else
                    KIND_STALE if status == "stale" else KIND_OTHER_DIALECT)
            label = model + (f"@{sha[:8]}" if shas[model] > 1 else "")
            suffix = [] if dialect == info.dialect else [dialect]
            if status == "stale":
                suffix.append(f"stale config {row_config[:8]}")
            row: dict = {"method": f"{label} (ours)" + (f" [{', '.join(suffix)}]" if suffix
                                                      else ""),
                         "kind": kind, "model": model, "model_sha256": sha,
                         "dialect": dialect, "verified": "",
                         "config_hash": ",".join(sorted(set(frame["config_hash"]))),
                         "seeds": int(frame.groupby("column").size().max())}
            anchor = None
            for column, cell in frame.groupby("column"):
                values = cell["value"].to_numpy(dtype=float)
                row[column] = float(values.mean())
                row[std_column(column)] = float(values.std(ddof=1)) if len(values) > 1 \
                    else np.nan
                published_row = owners.get(column, {}).get(model)
                if published_row is not None:
                    anchor = published_row if anchor is None else min(anchor, published_row)
                    if comparable:
                        row[delta_column(column)] = row[column] - pub.at[published_row, column]
            row["_anchor"] = anchor
            rows.append(row)
        return pd.DataFrame(rows)

    def compare(self, models: list[str]) -> pd.DataFrame:
        """Every result cell (protocol, dialect, dataset, split, layer, metric) all `models` share.

        A model is named by its display name, a name or path it was evaluated under, a
        path to its weights, or a sha256 prefix (`identity.resolve_model`). Only current
        results count (latest config hash per cell). Columns: the cell, then per model
        (its display name, `model_names(models)`) its mean, `± model` std and `n model`
        count, then `Δ model` for every model after the first (model minus the first).
        """
        if len(models) < 2:
            raise UserError("compare needs at least two models")
        keys = resolve_models(self.results, models)
        models = [display_name(self.results, key) for key in keys]
        frames = []
        for key, spec in zip(keys, models, strict=True):
            picked = self.results[self.results[KEY_COLUMN] == key]
            picked = _mark_stale(picked.assign(column=""))
            frames.append(picked[picked.status == "current"].assign(_who=spec))
        cell = ["protocol", "dialect", "dataset", "split", "layer", "metric"]
        stats = pd.concat(frames).groupby(["_who", *cell])["value"].agg(
            mean="mean", std=lambda v: v.std(ddof=1) if len(v) > 1 else np.nan, n="count")
        out = None
        for spec in models:
            part = stats.loc[spec].rename(
                columns={"mean": spec, "std": std_column(spec), "n": f"n {spec}"})
            out = part if out is None else out.join(part, how="inner")
        out = out.reset_index()
        for spec in models[1:]:
            out[delta_column(spec)] = out[spec] - out[models[0]]
        return out.sort_values(cell).reset_index(drop=True)


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Current results (latest config hash per cell) as mean, std (ddof=1) and n per cell.

    One row per (model, model_sha256, protocol, dialect, dataset, split, layer, metric).
    """
    group = ["model", "model_sha256", "protocol", "dialect", "dataset", "split", "layer",
             "metric"]
    if results.empty:
        return pd.DataFrame(columns=[*group, "mean", "std", "n"])
    marked = _mark_stale(results.assign(column=""))
    current = marked[marked.status == "current"]
    stats = current.groupby(group)["value"].agg(
        mean="mean", std=lambda v: v.std(ddof=1) if len(v) > 1 else np.nan, n="count")
    return stats.reset_index()


def _column_owners(info: TableInfo, pub: pd.DataFrame,
                   match: dict[str, str]) -> dict[str, dict[str, int]]:
    """column -> {model name -> index of the published row it is compared with}."""
    owners: dict[str, dict[str, int]] = {c: {} for c in info.value_columns}
    for index, value in pub["dcbench_model"].items():
        for column, model in parse_dcbench_model(value, info.value_columns).items():
            owners[column][model] = index
    for model, method in match.items():
        hits = pub.index[pub["method"] == method].tolist()
        if not hits:
            raise UserError(f"--match {model}={method}: no row {method!r} in {info.id}; rows: "
                            + ", ".join(pub["method"]))
        for column in info.value_columns:
            owners[column][model] = hits[0]
    return owners


def _place(results: pd.DataFrame, info: TableInfo,
           owners: dict[str, dict[str, int]], any_arch: Collection[str] = ()) -> pd.DataFrame:
    """Result rows that belong in the table, each tagged with its target `column`.

    When several columns hold the same cell (ECCV Table 4: AlexNet and VGG-16 detection),
    a result goes only to the column whose published row names its model.
    """
    by_key: dict[tuple, list[str]] = {}
    for spec in info.columns:
        if spec.matchable:
            by_key.setdefault(spec.key, []).append(spec.column)
    parts = []
    if info.arch:  # keep out catalog models of another architecture (VGG-16 in AlexNet tables)
        keep = results["model"].map(
            lambda m: m in any_arch or _catalog_arch(m) in (None, info.arch))
        results = results[keep.astype(bool)]
    datasets = results["dataset"].map(canonical_dataset)
    for (protocol, dataset, split, layer, metric), columns in by_key.items():
        hit = results[(results.protocol == protocol) & (datasets == dataset)
                      & (results.layer == layer) & (results.metric == metric)]
        if split:
            hit = hit[hit.split == split]
        for column in columns:
            chosen = hit
            if len(columns) > 1:
                chosen = hit[hit.model.isin(list(owners[column]))]
            parts.append(chosen.assign(column=column))
    if not parts:
        return pd.DataFrame()
    return pd.concat(parts, ignore_index=True)


def _catalog_arch(model: str) -> str | None:
    """The architecture of a hub catalog model, None for any other model name."""
    return catalog.get_entry(model).arch if catalog.has_entry(model) else None


def _mark_stale(placed: pd.DataFrame) -> pd.DataFrame:
    """Add `status` (current/stale) and `row_config` per (column, model, sha, dialect) cell."""
    placed = placed.copy()
    placed["timestamp"] = placed["timestamp"].astype(str)
    cell = ["column", "model", "model_sha256", "dialect", *CELL]
    latest = (placed.sort_values("timestamp").groupby(cell)["config_hash"].last()
              .rename("latest_config"))
    placed = placed.join(latest, on=cell)
    stale = placed["config_hash"] != placed["latest_config"]
    placed["status"] = np.where(stale, "stale", "current")
    placed["row_config"] = np.where(stale, placed["config_hash"], "")
    return placed.drop(columns="latest_config")


def _interleave(pub: pd.DataFrame, ours: pd.DataFrame) -> pd.DataFrame:
    """Put each of our rows right after the published row it is compared with."""
    pieces = []
    anchored = ours[ours["_anchor"].notna()]
    for index in pub.index:
        pieces.append(pub.loc[[index]])
        mine = anchored[anchored["_anchor"] == index]
        if not mine.empty:
            pieces.append(mine.drop(columns="_anchor"))
    rest = ours[ours["_anchor"].isna()]
    if not rest.empty:
        pieces.append(rest.drop(columns="_anchor"))
    merged = pd.concat(pieces, ignore_index=True)
    merged["seeds"] = merged["seeds"].astype("Int64")
    return merged


def _order_columns(frame: pd.DataFrame, info: TableInfo) -> pd.DataFrame:
    values = [c for col in info.value_columns
              for c in (col, std_column(col), delta_column(col))]
    tail = ["seeds", "dialect", "config_hash", "model", "model_sha256", *PROVENANCE_COLUMNS]
    head = ["method", "kind"]
    labels = [c for c in frame.columns if c not in (*head, *values, *tail)]
    for column in tail:
        if column not in frame:
            frame[column] = ""
    for column in ("config_hash", "model", "model_sha256", *PROVENANCE_COLUMNS):
        frame[column] = frame[column].fillna("")
    return frame[[*head, *labels, *values, *tail]].reset_index(drop=True)
