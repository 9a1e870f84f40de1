"""`dcbench bench`: run the performance benchmarks of `benchmarks/` and print one table.

The benchmarks live in the source checkout (`benchmarks/` next to `dcbench/`), not in the
installed package: they import scikit-learn/torchvision baselines and are meant to be run
from a clone. Each module there defines `run(quick) -> list[Row]` (see
`benchmarks/__init__.py`); this runner discovers them, runs them one after another, and
renders the rows under a line describing the machine. `python -m benchmarks` is the same.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import math
import pkgutil
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from dcbench.core.errors import UserError, did_you_mean
from dcbench.core.files import check_output_file, write_json, write_text

HELP = "run the performance benchmarks (dcbench vs scikit-learn/torchvision baselines)"
EPILOG = """examples:
  dcbench bench --quick                         # CI-sized run of every benchmark, a minute or two
  dcbench bench --list                          # the benchmark modules found
  dcbench bench --only knn_graph,features --quick
  dcbench bench --output results.md             # full sizes (minutes); also .json
  python -m benchmarks --quick                  # the same runner, from the source checkout
"""

SKIP_MODULES = frozenset({"common"})
OUTPUT_SUFFIXES = (".md", ".json")
COLUMNS = ("benchmark", "what", "dcbench", "baseline", "baseline figure", "unit", "ratio", "notes")


@dataclass
class Report:
    """What one runner invocation produced: rows, failures, the machine, and timing."""

    rows: list[Any]
    machine: dict[str, Any]
    quick: bool
    failures: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def source_root(package_dir: Path | None = None) -> Path:
    """The checkout holding `benchmarks/`: the parent of the `dcbench` package folder."""
    package_dir = package_dir or Path(__file__).resolve().parents[1]
    root = package_dir.parent
    if not (root / "benchmarks" / "__init__.py").is_file():
        raise UserError(
            f"dcbench bench needs the dcbench source checkout (no benchmarks/ folder next to "
            f"{package_dir}); clone the repository, pip install -e it and run from there"
        )
    return root


def import_benchmarks() -> ModuleType:
    """Import the `benchmarks` package of the source checkout."""
    root = source_root()
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    package = importlib.import_module("benchmarks")
    where = Path(package.__file__ or "").resolve().parent
    if where != root / "benchmarks":
        raise UserError(f"another 'benchmarks' package shadows dcbench's: {where}",
                        detail=f"  expected {root / 'benchmarks'}")
    return package


class BrokenModule:
    """Stands in for a benchmark module that failed to import or breaks the contract: its
    `run` raises the error, so the runner reports it in the table like a failing benchmark."""

    def __init__(self, name: str, error: Exception) -> None:
        self.__name__ = f"benchmarks.{name}"
        self.__doc__ = f"(not runnable: {type(error).__name__}: {error})"
        self.error = error

    def run(self, quick: bool) -> list[Any]:
        """Re-raise the import error."""
        raise self.error


Modules = dict[str, ModuleType | BrokenModule]


def discover() -> Modules:
    """Benchmark modules by short name: every `benchmarks/*.py` (not `common`, not `_*`)
    defining a callable `run`, in alphabetical order. One that fails to import, or whose
    `run` does not take exactly `quick`, is kept as a `BrokenModule` so that the problem
    shows in the table instead of stopping the run."""
    package = import_benchmarks()
    found: Modules = {}
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name.startswith("_") or info.name in SKIP_MODULES or info.ispkg:
            continue
        try:
            module = importlib.import_module(f"benchmarks.{info.name}")
        except Exception as err:  # a broken module must not hide the others
            found[info.name] = BrokenModule(info.name, err)
            continue
        run_fn = getattr(module, "run", None)
        if not callable(run_fn):
            continue
        params = list(inspect.signature(run_fn).parameters)
        if params != ["quick"]:
            found[info.name] = BrokenModule(info.name, TypeError(
                f"benchmarks/{info.name}.py: run({', '.join(params)}) does not follow the "
                "contract run(quick: bool) -> list[Row] (rename it if it is not a benchmark)"))
            continue
        found[info.name] = module
    return found


def select(available: Modules, only: str | None) -> Modules:
    """The modules named in `only` (comma-separated), all when None; unknown names refused."""
    if not only:
        return available
    names = [n.strip() for n in only.split(",") if n.strip()]
    for name in names:
        if name not in available:
            raise UserError(f"unknown benchmark {name!r}; " + did_you_mean(name, list(available)))
    return {name: available[name] for name in names}


def run_benchmarks(modules: Modules, quick: bool, verbose: bool = True) -> Report:
    """Run each module's `run(quick)`; a module that raises is recorded as a failure and the
    others still run (the table says which failed)."""
    from benchmarks.common import Row, load_average, machine  # lazy: only in a checkout

    report = Report(rows=[], machine=machine(), quick=quick)
    for name, module in modules.items():
        if verbose:
            print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            rows = list(module.run(quick))
            bad = [r for r in rows if not isinstance(r, Row)]
            if bad:
                raise TypeError(f"{name}.run returned {type(bad[0]).__name__}, expected Row")
            report.rows.extend(rows)
        except Exception as err:  # one broken benchmark must not hide the others
            report.failures[name] = f"{type(err).__name__}: {err}"
            if verbose:
                traceback.print_exc(file=sys.stderr)
        report.seconds[name] = time.perf_counter() - start
        if verbose:
            print(f"[bench] {name}: {report.seconds[name]:.1f}s", file=sys.stderr, flush=True)
    report.machine["load_avg_1m_end"] = load_average()
    return report


def fmt_number(value: float | None) -> str:
    """Three significant figures, plain notation for everyday magnitudes; '-' for None."""
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    magnitude = abs(value)
    if 1e-3 <= magnitude < 1e6:
        digits = max(0, 2 - int(math.floor(math.log10(magnitude))))
        return f"{value:,.{digits}f}"
    return f"{value:.3g}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: Report) -> str:
    """The table (GitHub markdown) under a caption naming the machine and the mode."""
    from benchmarks.common import (
        machine_line,  # lazy: only in a checkout
    )

    mode = "quick (CI sizes)" if report.quick else "full sizes"
    lines = [
        f"Machine: {machine_line(report.machine)}. Mode: {mode}. Ratio = how many times better "
        "dcbench is than the baseline (>1: dcbench wins).",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---" if c in ("benchmark", "what", "baseline", "notes") else "---:"
                       for c in COLUMNS) + "|",
    ]
    for row in report.rows:
        ratio = "-" if row.ratio is None else f"{fmt_number(row.ratio)}x"
        cells = [row.benchmark, row.what, fmt_number(row.dcbench), row.baseline_name,
                 fmt_number(row.baseline), row.unit, ratio, row.notes]
        lines.append("| " + " | ".join(_cell(str(c)) for c in cells) + " |")
    for name, error in report.failures.items():
        lines.append(f"| {name} | FAILED | - | - | - | - | - | {_cell(error)} |")
    return "\n".join(lines) + "\n"


def to_json(report: Report) -> dict[str, Any]:
    """A JSON-ready form of the report (rows as dicts, ratio included)."""
    return {
        "quick": report.quick,
        "machine": report.machine,
        "rows": [row.to_dict() for row in report.rows],
        "failures": report.failures,
        "seconds": report.seconds,
    }


def check_output(path: Path | None) -> None:
    """Refuse an output path we cannot write, before spending minutes on benchmarks."""
    if path is None:
        return
    if path.suffix not in OUTPUT_SUFFIXES:
        raise UserError(f"--output must end in {' or '.join(OUTPUT_SUFFIXES)}, got {path.name!r}")
    if path.is_dir():
        raise UserError(f"--output {path} is a folder; give a file name")
    check_output_file(path, "--output")


def write_output(path: Path, report: Report) -> None:
    """Atomically write the report as markdown or JSON, by suffix."""

    if path.suffix == ".json":
        write_json(path, to_json(report))
    else:
        write_text(path, render_markdown(report))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `dcbench bench` (and `python -m benchmarks`)."""
    parser.add_argument("--quick", action="store_true",
                        help="CI-sized inputs (seconds per benchmark) instead of the README sizes")
    parser.add_argument("--only", metavar="NAME[,NAME]",
                        help="run only these benchmark modules (see --list)")
    parser.add_argument("--output", type=Path, metavar="FILE",
                        help="also write the results to FILE (.md table or .json)")
    parser.add_argument("--list", action="store_true", help="list the benchmark modules and exit")


def run(args: argparse.Namespace) -> int:
    """Discover, run, print the table; exit 1 if any benchmark failed."""
    check_output(args.output)
    available = discover()
    if args.list:
        for name, module in available.items():
            doc = (module.__doc__ or "").strip().splitlines()
            print(f"{name:14s} {doc[0] if doc else ''}")
        return 0
    modules = select(available, args.only)
    report = run_benchmarks(modules, quick=args.quick)
    print(render_markdown(report), end="")
    if args.output is not None:
        write_output(args.output, report)
        print(f"wrote {args.output}", file=sys.stderr)
    if report.failures:
        print(f"dcbench bench: {len(report.failures)} benchmark(s) failed: "
              f"{', '.join(report.failures)}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m benchmarks`: the same arguments and runner as `dcbench bench`."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=HELP, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except UserError as err:
        print(f"python -m benchmarks: error: {err}", file=sys.stderr)
        return 2


__all__ = ["BrokenModule", "Report", "discover", "main", "render_markdown", "run_benchmarks",
           "select", "source_root", "to_json", "write_output"]
