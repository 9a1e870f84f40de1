"""The published tables shipped as package data: thesis Tables 5.2-5.5, ECCV Tables 1-5, ...

Layout of `dcbench/leaderboards/published/`:
- `index.csv`: one line per table (id, title, source, dialect, arch, unit, notes);
- `columns.csv`: each value column of each table mapped to the result it corresponds to
  (protocol, dataset, split, layer, metric); a blank protocol means "reference only";
- `plans.csv`: how `dcbench reproduce` measures each protocol column (the data name it
  reads, the dialect, the `--layers` taps, the VOC train layers and BN-scales switch, and
  the architecture a column is about where a table has one per architecture);
- `<id>.csv`: the table itself, wide: `method`, label columns, value columns (blank where
  the source prints '-'), then the provenance columns `dcbench_model, source, table,
  verified, notes`.

`dcbench_model` names the catalog model a published row corresponds to (that is how our
results get a delta). Where one row spans several models (ECCV Table 4: AlexNet and VGG-16
columns), it holds per-column names: `AlexNet=deepcluster-alexnet;VGG-16=deepcluster-vgg16`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from dcbench.core.errors import UserError, did_you_mean

PUBLISHED_DIR = Path(__file__).resolve().parent / "published"
PROVENANCE_COLUMNS = ("dcbench_model", "source", "table", "verified", "notes")
# Result rows carry the data folder's name as `dataset`; these common folder names mean the
# datasets of the published tables (compared case-insensitively).
DATASET_ALIASES = {
    "imagenet": ("imagenet", "imagenet1k", "imagenet-1k", "in1k", "ilsvrc2012", "ilsvrc"),
    "places205": ("places205", "places", "places-205"),
    "voc2007": ("voc2007", "voc07", "pascal-voc2007"),
    "voc2012": ("voc2012", "voc12", "pascal-voc2012"),
    "oxford5k": ("oxford5k", "oxford"),
    "paris6k": ("paris6k", "paris"),
}
_ALIAS = {alias: name for name, aliases in DATASET_ALIASES.items() for alias in aliases}
VERIFIED_VALUES = ("yes", "no")


@dataclass(frozen=True)
class ColumnSpec:
    """What one value column of a published table measures."""

    column: str
    protocol: str
    dataset: str
    split: str
    layer: str
    metric: str

    @property
    def matchable(self) -> bool:
        """Whether our results can be placed in this column (reference-only columns cannot)."""
        return bool(self.protocol and self.dataset and self.layer and self.metric)

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        """(protocol, dataset, split, layer, metric): the result cell this column holds."""
        return (self.protocol, self.dataset, self.split, self.layer, self.metric)


@dataclass(frozen=True)
class TableInfo:
    """A published table: its id, where it comes from, and what its value columns mean."""

    id: str
    title: str
    source: str
    dialect: str
    arch: str  # the architecture of every row ('' when the table mixes them)
    unit: str
    notes: str
    columns: tuple[ColumnSpec, ...]

    @property
    def value_columns(self) -> list[str]:
        """Names of the numeric columns, in table order."""
        return [spec.column for spec in self.columns]

    @property
    def matchable(self) -> bool:
        """Whether any column can receive dcbench results."""
        return any(spec.matchable for spec in self.columns)


def _read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")


@functools.cache
def _catalog() -> dict[str, TableInfo]:
    index = _read_csv(PUBLISHED_DIR / "index.csv")
    columns = _read_csv(PUBLISHED_DIR / "columns.csv")
    tables: dict[str, TableInfo] = {}
    for row in index.itertuples(index=False):
        if row.id in tables:
            raise ValueError(f"published/index.csv lists table {row.id!r} twice")
        specs = tuple(
            ColumnSpec(c.column, c.protocol, c.dataset, c.split, c.layer, c.metric)
            for c in columns[columns.table_id == row.id].itertuples(index=False)
        )
        tables[row.id] = TableInfo(
            row.id, row.title, row.source, row.dialect, row.arch, row.unit, row.notes, specs
        )
    unknown = set(columns.table_id) - set(tables)
    if unknown:
        raise ValueError(f"published/columns.csv maps unknown tables: {sorted(unknown)}")
    return tables


def list_tables() -> list[TableInfo]:
    """Every shipped published table, in index order."""
    return list(_catalog().values())


def canonical_dataset(name: str) -> str:
    """The published dataset id a result's dataset label stands for (`ILSVRC2012` -> imagenet)."""
    return _ALIAS.get(str(name).lower(), str(name))


def table_info(name: str) -> TableInfo:
    """The table called `name`; an unknown name is a UserError listing the valid ones."""
    tables = _catalog()
    if name not in tables:
        raise UserError(f"unknown table {name!r}; " + did_you_mean(name, list(tables)))
    return tables[name]


def parse_dcbench_model(value: str, columns: list[str]) -> dict[str, str]:
    """Map each value column to the catalog model a published row stands for.

    `"deepcluster-alexnet"` applies to every column; `"A=m1;B=m2"` names one model per column.
    """
    value = value.strip()
    if not value:
        return {}
    if "=" not in value:
        return {column: value for column in columns}
    out: dict[str, str] = {}
    for part in value.split(";"):
        column, _, model = part.partition("=")
        column, model = column.strip(), model.strip()
        if column not in columns or not model:
            raise ValueError(f"bad dcbench_model entry {part!r}; columns are {columns}")
        out[column] = model
    return out


@functools.cache
def _load(name: str) -> pd.DataFrame:
    info = table_info(name)
    frame = _read_csv(PUBLISHED_DIR / f"{name}.csv")
    missing = [c for c in ("method", *info.value_columns, *PROVENANCE_COLUMNS) if c not in frame]
    if missing:
        raise ValueError(f"published/{name}.csv lacks columns {missing}")
    bad = sorted(set(frame.verified) - set(VERIFIED_VALUES))
    if bad:
        raise ValueError(f"published/{name}.csv: verified must be yes/no, got {bad}")
    for column in info.value_columns:
        frame[column] = pd.to_numeric(frame[column].replace("", None), errors="raise")
        frame[column] = frame[column].astype(float)
    seen: dict[tuple[str, str], str] = {}
    for method, value in zip(frame.method, frame.dcbench_model, strict=True):
        for column, model in parse_dcbench_model(value, info.value_columns).items():
            if (column, model) in seen:
                raise ValueError(
                    f"published/{name}.csv: {model!r} matches both {seen[column, model]!r} "
                    f"and {method!r} in column {column!r}"
                )
            seen[column, model] = method
    return frame


def load_published(name: str) -> pd.DataFrame:
    """A published table as a DataFrame (value columns float, NaN where the source has '-')."""
    return _load(name).copy()
