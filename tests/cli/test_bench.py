"""The benchmark runner and the shared helpers: rows, ratios, table, discovery, errors.

Benchmarks are never timed here; these tests check the plumbing and hand-worked numbers.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pytest

from benchmarks.common import Row, machine, machine_line, short_revision, step_memory, timeit
from benchmarks.knn_graph import clustered_features, neighbour_recall, sklearn_knn
from dcbench.cli import bench
from dcbench.core.errors import UserError

EXPECTED_MODULES = {"features", "knn_graph", "memory", "train_epoch"}


def row(dc: float, unit: str, base: float | None = None, **kw) -> Row:
    name = "-" if base is None else "base"
    return Row(benchmark="b", what="w", dcbench=dc, unit=unit, baseline_name=name,
               baseline=base, **kw)


def test_ratio_is_how_many_times_better_for_both_kinds_of_unit():
    assert row(2.0, "s", 6.0).ratio == pytest.approx(3.0)  # 3x faster
    assert row(50.0, "img/s", 25.0).ratio == pytest.approx(2.0)
    assert row(400.0, "MiB", 100.0).ratio == pytest.approx(0.25)
    assert row(1.0, "s").ratio is None  # no baseline
    assert row(0.0, "MiB", 0.0).ratio == 1.0
    assert math.isinf(row(0.0, "s", 1.0).ratio)
    assert row(1.0, "s", 2.0).to_dict()["ratio"] == pytest.approx(2.0)
    numpy_row = row(np.float32(3.0), "s", np.int64(6))
    assert type(numpy_row.dcbench) is float and type(numpy_row.baseline) is float
    assert numpy_row.ratio == pytest.approx(2.0)


def test_rows_refuse_misplaced_or_missing_fields():
    with pytest.raises(TypeError):
        Row("b", "w", 1.0, "s")  # keyword-only: no positional mix-ups
    with pytest.raises(TypeError, match="figures must be numbers"):
        row("fast", "s", 1.0)
    with pytest.raises(TypeError, match="unit"):
        row(1.0, "", 1.0)
    with pytest.raises(ValueError, match="both baseline_name and baseline"):
        Row(benchmark="b", what="w", dcbench=1.0, unit="s", baseline_name="sklearn")


def test_number_format_keeps_three_significant_figures():
    assert bench.fmt_number(None) == "-"
    assert bench.fmt_number(0.0) == "0"
    assert bench.fmt_number(0.05349) == "0.0535"
    assert bench.fmt_number(2.214) == "2.21"
    assert bench.fmt_number(1597.3) == "1,597"
    assert bench.fmt_number(2.5e-5) == "2.5e-05"


def test_markdown_table_has_caption_header_rows_and_failures():
    report = bench.Report(
        rows=[Row(benchmark="knn_graph", what="10-NN | N=5", dcbench=1.0, unit="s",
                  baseline_name="sklearn", baseline=4.0, notes="a")],
        machine=machine(), quick=True, failures={"broken": "ValueError: boom"})
    text = bench.render_markdown(report)
    lines = text.splitlines()
    assert lines[0].startswith("Machine: ") and "quick" in lines[0]
    assert lines[2] == "| " + " | ".join(bench.COLUMNS) + " |"
    assert lines[4] == "| knn_graph | 10-NN \\| N=5 | 1.00 | sklearn | 4.00 | s | 4.00x | a |"
    assert lines[5].startswith("| broken | FAILED |") and "boom" in lines[5]
    assert all(line.count("|") - line.count("\\|") == len(bench.COLUMNS) + 1
               for line in lines[2:])


def test_machine_line_names_cores_threads_and_versions():
    info = machine()
    line = machine_line(info)
    assert f"{info['cores']} cores" in line and "torch threads" in line
    assert f"faiss {info['versions']['faiss']}" in line
    assert short_revision("0123456789abcdef0123+dirty") == "0123456789ab+dirty"
    assert short_revision("unknown") == "unknown"


def test_timeit_returns_median_and_last_value():
    calls = []
    seconds, value = timeit(lambda: calls.append(1) or len(calls), repeat=3, warmup=2)
    assert value == 5 and len(calls) == 5 and seconds >= 0


def test_memory_probe_sees_an_allocation_of_known_size_and_not_the_setup():
    setup = "import numpy as np\nbig_setup = np.ones((64, 2**20 // 8))"  # 64 MiB, not counted
    probe = step_memory(setup, "a = np.ones((200, 2**20 // 8)); print('SUM', a.sum())")
    assert 195 <= probe.extra_mib <= 230, probe
    assert probe.before_mib >= 64 and "SUM" in probe.stdout
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        step_memory("", "1 / 0")


def test_neighbour_recall_hand_worked_and_against_sklearn():
    ref = np.array([[1, 2], [0, 2], [0, 1]])
    assert neighbour_recall(ref, ref) == 1.0
    assert neighbour_recall(np.array([[2, 1], [2, 3], [4, 5]]), ref) == pytest.approx(3 / 6)
    x = clustered_features(300, dim=16, centers=5)
    assert np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    ids = sklearn_knn(x, 4)
    assert ids.shape == (300, 4) and not (ids == np.arange(300)[:, None]).any()


def test_discovery_finds_every_module_with_run():
    found = bench.discover()
    assert set(found) >= EXPECTED_MODULES
    assert "common" not in found and all(callable(m.run) for m in found.values())


def test_unknown_benchmark_and_bad_output_are_refused_before_running():
    with pytest.raises(UserError, match="unknown benchmark 'knn_grph'.*Did you mean knn_graph"):
        bench.select(bench.discover(), "knn_grph")
    with pytest.raises(UserError, match="--output must end in .md or .json"):
        bench.check_output(Path("results.txt"))


def test_installed_without_source_tree_is_a_clear_error(tmp_path: Path):
    package_dir = tmp_path / "site-packages" / "dcbench"
    package_dir.mkdir(parents=True)
    with pytest.raises(UserError, match="needs the dcbench source checkout"):
        bench.source_root(package_dir)
    assert (bench.source_root() / "benchmarks" / "common.py").is_file()


def test_cli_refuses_unknown_benchmark_with_exit_2(capsys: pytest.CaptureFixture[str]):
    from dcbench.cli.entry import main

    assert main(["bench", "--only", "nope", "--quick"]) == 2
    assert "unknown benchmark 'nope'" in capsys.readouterr().err


def test_a_failing_benchmark_is_reported_and_others_still_run(monkeypatch, tmp_path, capsys):
    class Good:
        @staticmethod
        def run(quick: bool) -> list[Row]:
            return [row(1.0, "s", 2.0)]

    class Bad:
        @staticmethod
        def run(quick: bool) -> list[Row]:
            raise ValueError("exploded")

    monkeypatch.setattr(bench, "discover", lambda: {"bad": Bad, "good": Good})
    out = tmp_path / "r.json"
    args = argparse.Namespace(quick=True, only=None, output=out, list=False)
    assert bench.run(args) == 1
    data = json.loads(out.read_text())
    assert data["failures"] == {"bad": "ValueError: exploded"}
    assert [r["what"] for r in data["rows"]] == ["w"]
    assert data["rows"][0]["ratio"] == pytest.approx(2.0)
    assert "| bad | FAILED |" in capsys.readouterr().out


def test_a_module_that_fails_to_import_or_breaks_the_contract_becomes_a_failure_row(
        monkeypatch):
    import importlib
    import types

    real = importlib.import_module
    off_contract = types.ModuleType("benchmarks.knn_graph")
    off_contract.run = lambda args: []

    def fake_import(name: str, *args):
        if name == "benchmarks.memory":
            raise ImportError("no module named 'psutil'")
        if name == "benchmarks.knn_graph":
            return off_contract
        return real(name, *args)

    monkeypatch.setattr(bench.importlib, "import_module", fake_import)
    found = bench.discover()
    assert isinstance(found["memory"], bench.BrokenModule)
    assert isinstance(found["knn_graph"], bench.BrokenModule)
    assert not isinstance(found["features"], bench.BrokenModule)
    report = bench.run_benchmarks({n: found[n] for n in ("memory", "knn_graph")}, quick=True,
                                  verbose=False)
    assert report.rows == []
    assert report.failures["memory"] == "ImportError: no module named 'psutil'"
    assert "run(args) does not follow the contract" in report.failures["knn_graph"]
