"""The SQLite results store: WAL, concurrent writers, idempotent upserts, migrations."""

from __future__ import annotations

import multiprocessing
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest

from dcbench.core.errors import UserError
from dcbench.leaderboards import store as store_module
from dcbench.leaderboards.store import (
    SCHEMA_VERSION,
    ResultsStore,
    check_store,
    migrate,
    schema_version,
)

N_PROCS, N_BATCHES, BATCH = 8, 15, 4


def row(**overrides: object) -> dict:
    base = dict(run_id="run-a", model="deepcluster-alexnet", model_sha256="ab" * 32,
                protocol="linear-conv", dialect="dc2018", dataset="imagenet", split="val",
                layer="conv3", metric="top1", value=41.0, seed=0, config_hash="cfg1",
                dcbench_version="0.1.0", code_revision="abc", device="cpu",
                timestamp="2026-11-24T10:00:00+00:00")
    base.update(overrides)
    return base


def _writer(path: str, proc: int, start) -> None:
    store = ResultsStore(path)
    start.wait(60)  # every process starts writing at the same moment
    store.add_run(f"proc{proc}", "eval", {"proc": proc}, {"dcbench": "0.1.0"}, "cpu",
                  "t0", "t1")
    for batch in range(N_BATCHES):
        store.add_results([
            row(run_id=f"proc{proc}", layer=f"conv{i}", seed=batch,
                value=float(proc * 1000 + batch * 10 + i))
            for i in range(BATCH)
        ])


def test_eight_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "results.sqlite")
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    procs = [ctx.Process(target=_writer, args=(path, p, start)) for p in range(N_PROCS)]
    for proc in procs:
        proc.start()
    start.set()
    for proc in procs:
        proc.join(timeout=120)
        assert proc.exitcode == 0
    frame = ResultsStore(path).results()
    assert len(frame) == N_PROCS * N_BATCHES * BATCH
    expected = {float(p * 1000 + b * 10 + i)
                for p in range(N_PROCS) for b in range(N_BATCHES) for i in range(BATCH)}
    assert set(frame.value) == expected
    assert len(ResultsStore(path).runs()) == N_PROCS
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_retry_on_locked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module.time, "sleep", lambda _: None)
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise sqlite3.OperationalError("database is locked")
        return "ok"

    assert store_module._retry(flaky) == "ok" and len(calls) == 3
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        store_module._retry(lambda: (_ for _ in ()).throw(
            sqlite3.OperationalError("no such table: x")))


def test_upsert_is_idempotent_and_replaces_value(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "r.sqlite")
    assert store.add_results([row(), row(seed=1, value=43.0)]) == 2
    store.add_results([row(), row(seed=1, value=43.0)])
    assert len(store.results()) == 2
    store.add_results([row(value=40.0)])
    frame = store.results(seed=0)
    assert list(frame.value) == [40.0]


def test_rows_without_seed_upsert_too(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "r.sqlite")
    store.add_results([row(seed=None)])
    store.add_results([row(seed=None, value=1.0)])
    frame = store.results()
    assert len(frame) == 1 and frame.seed.isna().all() and frame.value.iloc[0] == 1.0
    assert len(store.results(seed=None)) == 1


@dataclass
class FakeResult:  # same fields as dcbench.protocols.base.Result
    run_id: str
    model: str
    model_sha256: str
    protocol: str
    dialect: str
    dataset: str
    split: str
    layer: str
    metric: str
    value: float
    seed: int | None
    config_hash: str
    dcbench_version: str
    code_revision: str
    device: str
    timestamp: str


def test_accepts_result_dataclasses_and_any_metric(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "r.sqlite")
    store.add_results([FakeResult(**row(metric="ratio_edge_intra_class", value=0.42)),
                       FakeResult(**row(metric="iou_aeroplane", value=55.0))])
    frame = store.results(metric=["ratio_edge_intra_class", "iou_aeroplane"])
    assert sorted(frame.metric) == ["iou_aeroplane", "ratio_edge_intra_class"]


def test_filters(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "r.sqlite")
    store.add_results([row(layer="conv1"), row(layer="conv2"), row(layer="conv3", model="x")])
    assert len(store.results(model="deepcluster-alexnet")) == 2
    assert list(store.results(layer=("conv2", "conv3")).layer) == ["conv2", "conv3"]
    with pytest.raises(UserError, match="unknown result filter"):
        store.results(colour="red")


def test_bad_rows_write_nothing(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "r.sqlite")
    with pytest.raises(UserError, match="row 1: value must be a number"):
        store.add_results([row(), row(value="high")])
    with pytest.raises(UserError, match="missing required"):
        store.add_results([row(metric="")])
    with pytest.raises(UserError, match="unknown field"):
        store.add_results([row(acc=3)])
    with pytest.raises(UserError, match="finite"):
        store.add_results([row(value=float("nan"))])
    assert store.results().empty


def test_runs_record(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "r.sqlite")
    store.add_run("r1", "eval", {"lr": 0.01}, {"torch": "2"}, "cpu", "a", "b", {"s": 1.5})
    store.add_run("r1", "eval", {"lr": 0.02}, {"torch": "2"}, "cpu", "a", "c")
    runs = store.runs()
    assert len(runs) == 1
    assert runs.config.iloc[0] == {"lr": 0.02} and runs.finished.iloc[0] == "c"
    assert runs.extra.iloc[0] == {}


def test_migration_from_version_1_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrate(conn, target=1) == 1
    conn.execute("INSERT INTO runs VALUES ('old', 'eval', '{}', '{}', 'cpu', 'a', 'b')")
    fields = ", ".join(store_module.RESULT_FIELDS)
    values = row(run_id="old")
    conn.execute(f"INSERT INTO results ({fields}) VALUES ({', '.join('?' * len(values))})",
                 [values[f] for f in store_module.RESULT_FIELDS])
    columns = [r[1] for r in conn.execute("PRAGMA table_info(runs)")]
    assert "extra_json" not in columns
    conn.close()

    store = ResultsStore(path)
    with sqlite3.connect(path) as check:
        assert schema_version(check) == SCHEMA_VERSION
        indexes = {r[1] for r in check.execute("PRAGMA index_list(results)")}
    assert "results_cell" in indexes
    assert store.runs().extra.iloc[0] == {}
    assert store.results().value.tolist() == [41.0]
    store.add_run("new", "eval", {}, {}, "cpu", "a", "b", {"k": 1})
    assert store.runs().set_index("run_id").extra["new"] == {"k": 1}


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.sqlite"
    ResultsStore(path)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 5,))
    with pytest.raises(UserError, match="newer than this dcbench"):
        ResultsStore(path)


def test_not_a_database_is_a_user_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(UserError, match="unreadable"):
        ResultsStore(path)
    with pytest.raises(UserError, match="is a directory"):
        ResultsStore(tmp_path)


def _tables(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()


def test_someone_elses_sqlite_file_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "clinic.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE patients (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO patients (name) VALUES ('ada')")
    before, data = _tables(path), path.read_bytes()
    with pytest.raises(UserError, match="not a dcbench results store"):
        check_store(path)
    with pytest.raises(UserError, match="not a dcbench results store"):
        ResultsStore(path)
    assert _tables(path) == before and path.read_bytes() == data


def _corrupt_store(path: Path) -> None:
    """A dcbench store with rows, then one of its b-tree pages overwritten (bit rot)."""
    store = ResultsStore(path)
    store.add_results([row(layer=f"conv{i}", seed=s) for i in range(5) for s in range(60)])
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.close()  # the last connection: its -wal / -shm go with it
    assert pages > 4
    data = bytearray(path.read_bytes())
    data[3 * page:4 * page] = b"\xa5" * page
    path.write_bytes(bytes(data))


def test_a_corrupt_store_is_found_by_the_check(tmp_path: Path) -> None:
    path = tmp_path / "results.sqlite"
    _corrupt_store(path)
    with pytest.raises(UserError, match="corrupt|unreadable"):
        check_store(path)
    # refused without a trace: no -wal / -shm created next to it (issue 26)
    assert [p.name for p in tmp_path.iterdir()] == ["results.sqlite"]


def test_the_check_of_a_healthy_closed_store_leaves_no_side_files(tmp_path: Path) -> None:
    path = tmp_path / "results.sqlite"
    ResultsStore(path).add_results([row()])
    assert [p.name for p in tmp_path.iterdir()] == ["results.sqlite"]
    check_store(path)
    assert [p.name for p in tmp_path.iterdir()] == ["results.sqlite"]


def test_the_check_reads_a_store_another_process_is_writing(tmp_path: Path) -> None:
    path = tmp_path / "results.sqlite"
    ResultsStore(path).add_results([row()])
    writer = sqlite3.connect(path)  # a concurrent writer keeps its -wal file open
    try:
        writer.execute("PRAGMA journal_mode=WAL")
        writer.execute("INSERT INTO schema_version SELECT version FROM schema_version WHERE 0")
        check_store(path)
    finally:
        writer.close()


def test_healthy_new_and_missing_stores_pass_the_check(tmp_path: Path) -> None:
    check_store(tmp_path / "missing.sqlite")
    (tmp_path / "empty.sqlite").touch()
    check_store(tmp_path / "empty.sqlite")
    ResultsStore(tmp_path / "ok.sqlite").add_results([row()])
    check_store(tmp_path / "ok.sqlite")
    assert not (tmp_path / "missing.sqlite").exists()
