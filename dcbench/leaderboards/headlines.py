"""A catalog model's headline result: its best-known published number, for `hub list`.

Like timm's results tables and Hub cards: one number per model, from the published tables
shipped with dcbench (a row's `dcbench_model` names the catalog model), in a fixed order
of preference (ImageNet linear probes first, then VOC07 and retrieval). Models that no
published table names have no headline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from dcbench.leaderboards.export import format_number
from dcbench.leaderboards.published import load_published, parse_dcbench_model, table_info

# (table, column, short label), most telling first. IN = ImageNet linear probe top-1 (%),
# VOC07 = mAP (%), Oxford5K = retrieval mAP (%).
SOURCES: tuple[tuple[str, str, str], ...] = (
    ("deepclusterv2-imagenet", "top1 (SwAV README)", "IN top-1"),
    ("deepclusterv2-imagenet", "top1 (VISSL)", "IN top-1"),
    ("eccv-table1-imagenet", "conv5", "IN conv5"),
    ("thesis-5.3", "conv5", "IN conv5"),
    ("mmselfsup-r50-voc07-svm", "SVM mAP", "VOC07 SVM"),
    ("eccv-table4", "VGG-16", "VOC07 det"),
    ("eccv-table2", "cls fc6-8", "VOC07 cls"),
    ("eccv-table5", "Oxford5K", "Oxford5K"),
)


@dataclass(frozen=True)
class Headline:
    """One published number for a catalog model, with where it comes from."""

    label: str
    value: float
    table: str
    method: str

    def short(self) -> str:
        """`IN conv5 38.2`."""
        return f"{self.label} {format_number(self.value)}"

    def source(self) -> str:
        """`eccv-table1-imagenet, row DeepCluster` (which table and row)."""
        return f"{self.table}, row {self.method}"


@lru_cache(maxsize=1)
def headlines() -> dict[str, Headline]:
    """Catalog name -> its headline (the first source in `SOURCES` with a number for it)."""
    out: dict[str, Headline] = {}
    for table, column, label in SOURCES:
        frame = load_published(table)
        columns = table_info(table).value_columns
        for _, row in frame.iterrows():
            model = parse_dcbench_model(row.get("dcbench_model", "") or "", columns).get(column)
            value = row.get(column)
            if model and model not in out and value is not None and not math.isnan(value):
                out[model] = Headline(label, float(value), table, str(row["method"]))
    return out


def headline_for(name: str) -> Headline | None:
    """The headline of catalog model `name`, or None when no published table names it."""
    return headlines().get(name)
