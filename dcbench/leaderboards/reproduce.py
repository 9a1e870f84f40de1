"""Turn a published table into the `dcbench eval` runs that fill its columns (`dcbench reproduce`).

What each value column needs comes from the table's own metadata: `published/columns.csv`
(protocol, dataset, split, layer, metric) and `published/plans.csv` (per column: the data
root it reads, the protocol dialect, the taps passed as `--layers`, the VOC `train_layers`
and BN-scales switch, and, for ECCV Table 4, the architecture a column is about). Columns
that share (protocol, data, dialect, train layers, BN switch) become one run whose
`--layers` is the union of theirs (linear-conv trains conv1..conv5 in one run).

A run whose data root was not given is *not run*: its columns are reported as such in the
model's row, never as a number. Everything here is checked before anything runs: table
and data names, each root's layout, the model's taps and fc6/fc7 head.
"""

from __future__ import annotations

import dataclasses
import functools
import shlex
from pathlib import Path

import pandas as pd

from dcbench.core.errors import UserError, did_you_mean
from dcbench.data.folders import IMAGEFOLDER_LAYOUT, list_file_candidates
from dcbench.data.voc import find_voc
from dcbench.leaderboards.published import PUBLISHED_DIR, TableInfo, list_tables, table_info
from dcbench.models.backbone import Backbone
from dcbench.protocols.base import get_protocol
from dcbench.protocols.retrieval import find_folder
from dcbench.protocols.voc.nets import backbone_parts

# --data NAME=ROOT: what each name is and which published datasets it holds.
DATA_NAMES: dict[str, tuple[str, tuple[str, ...]]] = {
    "imagenet": ("ImageNet: ROOT/train/CLASS/*, ROOT/val/CLASS/* (or list files)",
                 ("imagenet",)),
    "places205": ("Places205: ROOT/{train,val}/CLASS/* or the Places205 list files",
                  ("places205",)),
    "voc": ("PASCAL VOC: the VOCdevkit holding VOC2007 (and VOC2012 for segmentation)",
            ("voc2007", "voc2012")),
    "retrieval": ("Oxford5k / Paris6k: ROOT/oxford5k/ and ROOT/paris6k/ (images + gt)",
                  ("oxford5k", "paris6k")),
}
# Protocols that fine-tune an AlexNet/VGG fc6-fc7 head (the model must have one).
HEAD_PROTOCOLS = ("mlp", "voc07-cls", "voc07-det", "voc12-seg")


@dataclasses.dataclass(frozen=True)
class ColumnPlan:
    """How one value column of a published table is measured (`plans.csv` + `columns.csv`)."""

    column: str
    protocol: str
    dataset: str
    data: str
    dialect: str
    layers: tuple[str, ...]
    train_layers: str
    train_bn_scales: bool
    arch: str  # '' = any model; else the architecture family the column is about


@dataclasses.dataclass(frozen=True)
class PlannedRun:
    """One `dcbench eval` run of the plan and the columns it fills."""

    name: str  # the run's folder under the plan's --out
    protocol: str
    data: str
    dialect: str
    layers: tuple[str, ...]
    train_layers: str
    train_bn_scales: bool
    columns: tuple[str, ...]
    datasets: tuple[str, ...]  # the published dataset of each column (same order)
    root: Path | None = None  # None: no --data for it, not run
    skip: str = ""  # why it is not run ('' when it runs)
    arch: str = ""  # the architecture family its columns are about ('' = any)

    @property
    def runs(self) -> bool:
        """Whether this run will execute (it has data and suits the model)."""
        return not self.skip

    def eval_argv(self, model: str, *, schedule: str, seed: int | None, out: Path,
                  overrides: tuple[str, ...] = (), fast: bool = False,
                  store: str | None = None, device: str | None = None) -> list[str]:
        """The `dcbench eval` arguments of this run (what `--dry-run` prints and runs)."""
        if self.root is None:
            raise ValueError(f"run {self.name} has no data root")
        argv = ["eval", "--protocol", self.protocol, "--model", model, "--data",
                str(self.root), "--dialect", self.dialect, "--schedule", schedule]
        if self.layers:
            argv += ["--layers", ",".join(self.layers)]
        if self.train_layers:
            argv += ["--train-layers", self.train_layers]
        if self.train_bn_scales:
            argv.append("--train-bn-scales")
        if fast:
            argv.append("--fast")
        if seed is not None:
            argv += ["--seed", str(seed)]
        for item in overrides:
            argv += ["--set", item]
        argv += ["--out", str(out / self.name)]
        if store:
            argv += ["--store", store]
        if device:
            argv += ["--device", device]
        return argv


@dataclasses.dataclass(frozen=True)
class Plan:
    """Every run a published table needs, for one model and set of data roots."""

    table: TableInfo
    runs: tuple[PlannedRun, ...]

    @property
    def not_run(self) -> dict[str, str]:
        """column -> why it gets no number (no data root, or a column about another arch)."""
        return {c: r.skip for r in self.runs if r.skip for c in r.columns}

    def run_named(self, name: str) -> PlannedRun:
        """The planned run whose folder is `name`."""
        return next(r for r in self.runs if r.name == name)


@functools.cache
def _plan_rows() -> pd.DataFrame:
    return pd.read_csv(PUBLISHED_DIR / "plans.csv", dtype=str, keep_default_na=False,
                       encoding="utf-8")


def column_plans(table_id: str) -> list[ColumnPlan]:
    """Per value column of `table_id` (in table order), how it is measured; [] when the table
    is reference only (no dcbench protocol matches its columns)."""
    info = table_info(table_id)
    rows = _plan_rows()
    rows = rows[rows.table_id == info.id].set_index("column")
    out = []
    for spec in info.columns:
        if not spec.matchable:
            continue
        if spec.column not in rows.index:
            raise ValueError(f"published/plans.csv has no plan for {info.id} column "
                             f"{spec.column!r}")
        row = rows.loc[spec.column]
        if row.data not in DATA_NAMES or spec.dataset not in DATA_NAMES[row.data][1]:
            raise ValueError(f"published/plans.csv: {info.id} {spec.column!r} reads "
                             f"{spec.dataset} from data {row.data!r}")
        out.append(ColumnPlan(spec.column, spec.protocol, spec.dataset, row.data, row.dialect,
                              tuple(v for v in row.layers.split(",") if v), row.train_layers,
                              row.train_bn_scales == "true", row.arch))
    return out


def plannable_tables() -> list[TableInfo]:
    """The shipped tables that get a plan (every table with a column dcbench can measure)."""
    return [t for t in list_tables() if column_plans(t.id)]


def table_data(table_id: str) -> list[str]:
    """The --data names a table reads, in first-use order."""
    return list(dict.fromkeys(c.data for c in column_plans(table_id)))


def make_plan(table_id: str, roots: dict[str, Path], model_arch: str | None = None) -> Plan:
    """Group the table's columns into runs; a run without a root (or about another
    architecture than `model_arch`) is kept with the reason it is not run."""
    info = table_info(table_id)
    columns = column_plans(info.id)
    if not columns:
        raise UserError(f"table {info.id} is reference only (no dcbench protocol measures its "
                        "columns); tables with a plan: "
                        + ", ".join(t.id for t in plannable_tables()))
    groups: dict[tuple, list[ColumnPlan]] = {}
    for column in columns:
        key = (column.protocol, column.data, column.dialect, column.train_layers,
               column.train_bn_scales, column.arch)
        groups.setdefault(key, []).append(column)
    runs = []
    for number, ((protocol, data, dialect, train_layers, bn, arch), members) in enumerate(
            groups.items(), start=1):
        layers = tuple(dict.fromkeys(layer for c in members for layer in c.layers))
        parts = (protocol, "" if protocol in HEAD_PROTOCOLS or data == protocol else data,
                 train_layers + ("+bn" if bn else ""), arch)
        root = roots.get(data)
        skip = "" if root is not None else f"not run: no --data {data}=ROOT"
        if model_arch is not None and not _arch_fits(arch, model_arch):
            skip = f"not run: a column about {arch} models ({model_arch} given)"
        runs.append(PlannedRun(f"{number:02d}-" + "-".join(p for p in parts if p), protocol,
                               data, dialect, layers, train_layers, bn,
                               tuple(c.column for c in members),
                               tuple(c.dataset for c in members), root, skip, arch))
    return Plan(info, tuple(runs))


def _arch_fits(wanted: str, arch: str) -> bool:
    """'' fits any model; `alexnet` fits alexnet and alexnet_small."""
    return not wanted or arch == wanted or arch.startswith(wanted + "_")


def parse_data(pairs: list[str], table_id: str) -> dict[str, Path]:
    """`NAME=ROOT` pairs -> {name: root}: known names the table reads, existing folders."""
    needed = table_data(table_id)
    roots: dict[str, Path] = {}
    for pair in pairs:
        name, sep, root = pair.partition("=")
        name, root = name.strip(), root.strip()
        if not sep or not name or not root:
            raise UserError(f"--data expects NAME=ROOT (e.g. imagenet=/datasets/imagenet), "
                            f"got {pair!r}")
        if name not in DATA_NAMES:
            raise UserError(f"unknown data name {name!r}; " + did_you_mean(name,
                                                                          list(DATA_NAMES)))
        if name not in needed:
            raise UserError(f"table {table_id} does not read {name!r}; it reads "
                            + ", ".join(needed))
        if name in roots:
            raise UserError(f"--data {name}= given twice")
        path = Path(root).expanduser()
        if not path.is_dir():
            raise UserError(f"--data {name}={root}: no such folder")
        roots[name] = path.resolve()
    return roots


def check_layouts(plan: Plan) -> None:
    """Each root the plan reads has the layout its protocols expect (cheap checks, no scan)."""
    for run in plan.runs:
        if run.root is None:
            continue
        if run.data in ("imagenet", "places205"):
            for split in ("train", "val"):
                if not ((run.root / split).is_dir()
                        or any(p.is_file() for p in list_file_candidates(run.root, split))):
                    raise UserError(f"--data {run.data}={run.root}: no {split}/ folder or "
                                    f"{split} list file", detail=IMAGEFOLDER_LAYOUT)
        elif run.data == "voc":
            for year in sorted({"2012" if d == "voc2012" else "2007" for d in run.datasets}):
                find_voc(run.root, year)
        elif run.data == "retrieval":
            for dataset in ("oxford5k", "paris6k"):
                find_folder(run.root, dataset)


def check_model(plan: Plan, model: Backbone) -> None:
    """The model has every tap and head the plan's runs use (a UserError naming it if not)."""
    for run in plan.runs:
        if not _arch_fits(run.arch, str(model.config.get("arch", ""))):
            continue
        if run.layers:
            model.check_layers(list(run.layers))
        if run.protocol in HEAD_PROTOCOLS:
            backbone_parts(model, run.protocol)
        if run.protocol == "retrieval":
            model.check_layers([get_protocol("retrieval").Config().layer])


def applicable_overrides(protocol: str, overrides: list[str]) -> tuple[str, ...]:
    """The `--set KEY=VALUE` items whose KEY the protocol's config has."""
    fields = {f.name for f in dataclasses.fields(get_protocol(protocol).Config)}
    return tuple(o for o in overrides if o.partition("=")[0].split(".")[0].strip() in fields)


def check_overrides(plan: Plan, overrides: list[str]) -> None:
    """Every --set key belongs to at least one protocol of the plan."""
    for item in overrides:
        if "=" not in item:
            raise UserError(f"--set expects KEY=VALUE, got {item!r}")
        if not any(item in applicable_overrides(r.protocol, [item]) for r in plan.runs):
            protocols = sorted({r.protocol for r in plan.runs})
            raise UserError(f"--set {item}: no protocol of {plan.table.id} "
                            f"({', '.join(protocols)}) has the key {item.partition('=')[0]!r}")


def takes_fast(protocol: str) -> bool:
    """Whether the protocol has the `fast` (cached features) switch."""
    return any(f.name == "fast" for f in dataclasses.fields(get_protocol(protocol).Config))


def command_line(argv: list[str]) -> str:
    """`dcbench ...` as a copy-pastable shell line."""
    return "dcbench " + shlex.join(argv)
