"""The results store: one SQLite file, WAL mode, safe for many concurrent writers.

Every number dcbench measures ends up here as one long-format row (the `Result` contract of
DESIGN.md), next to the run that produced it (config, versions, device, timings). Several
eval jobs may write at once: each write is one short `BEGIN IMMEDIATE` transaction, SQLite's
busy timeout queues writers, and a `database is locked` that still escapes is retried with
backoff. Re-importing the same rows is idempotent (upsert on the natural key).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from dcbench.core.errors import UserError
from dcbench.core.files import check_output_file
from dcbench.core.home import results_store_path
from dcbench.core.rows import RESULT_FIELDS, normalize_row

BUSY_TIMEOUT_MS = 30_000
MAX_RETRIES = 50

# Schema history. Each entry upgrades from version i to i + 1; never edit a shipped entry,
# append a new one.
MIGRATIONS: list[tuple[str, ...]] = [
    (  # 1: results and runs
        """CREATE TABLE runs (
            run_id TEXT PRIMARY KEY, kind TEXT NOT NULL, config_json TEXT NOT NULL,
            versions_json TEXT NOT NULL, device TEXT NOT NULL,
            started TEXT NOT NULL, finished TEXT NOT NULL)""",
        """CREATE TABLE results (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id TEXT NOT NULL, model TEXT NOT NULL, model_sha256 TEXT NOT NULL,
            protocol TEXT NOT NULL, dialect TEXT NOT NULL, dataset TEXT NOT NULL,
            split TEXT NOT NULL, layer TEXT NOT NULL, metric TEXT NOT NULL,
            value REAL NOT NULL, seed INTEGER NOT NULL, config_hash TEXT NOT NULL,
            dcbench_version TEXT NOT NULL, code_revision TEXT NOT NULL,
            device TEXT NOT NULL, timestamp TEXT NOT NULL,
            UNIQUE (run_id, model, model_sha256, protocol, dialect, dataset, split, layer,
                    metric, seed))""",
    ),
    (  # 2: free-form run extras (timings per phase, data paths) and a lookup index
        "ALTER TABLE runs ADD COLUMN extra_json TEXT NOT NULL DEFAULT '{}'",
        "CREATE INDEX results_cell ON results (protocol, dataset, layer, metric)",
        "CREATE INDEX results_model ON results (model, model_sha256)",
    ),
    (  # 3: where a run's per-item outcomes are (core.outcomes), for paired intervals
        """CREATE TABLE outcomes (
            run_id TEXT NOT NULL, split TEXT NOT NULL, layer TEXT NOT NULL,
            metric TEXT NOT NULL, seed INTEGER NOT NULL, kind TEXT NOT NULL,
            listing TEXT NOT NULL, n_items INTEGER NOT NULL, path TEXT NOT NULL,
            PRIMARY KEY (run_id, split, layer, metric, seed))""",
    ),
]
OUTCOME_FIELDS = ("run_id", "split", "layer", "metric", "seed", "kind", "listing", "n_items",
                  "path")
SCHEMA_VERSION = len(MIGRATIONS)
NO_SEED = -1  # stored for rows without a seed, so the UNIQUE key stays a real key

_KEY = ("run_id", "model", "model_sha256", "protocol", "dialect", "dataset", "split",
        "layer", "metric", "seed")


def _is_locked(err: sqlite3.OperationalError) -> bool:
    text = str(err).lower()
    return "locked" in text or "busy" in text


def _retry(action: Callable[[], Any]) -> Any:
    """Run `action`, retrying with backoff while another process holds the write lock."""
    delay = 0.01
    for attempt in range(MAX_RETRIES):
        try:
            return action()
        except sqlite3.OperationalError as err:
            if not _is_locked(err) or attempt == MAX_RETRIES - 1:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
    raise AssertionError("unreachable")


def schema_version(conn: sqlite3.Connection) -> int:
    """The schema version recorded in the database (0 for a new, empty file)."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_version'"
    ).fetchone()
    if not exists:
        return 0
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    if row and (isinstance(row[0], bool) or not isinstance(row[0], int)):
        raise UserError(f"results store schema_version is {row[0]!r:.40}, not an integer: the "
                        "file is corrupt or not a dcbench store")
    return int(row[0]) if row else 0


# every table a dcbench store holds (sqlite_sequence: SQLite's own, for AUTOINCREMENT)
STORE_TABLES = frozenset({"schema_version", "runs", "results", "outcomes", "sqlite_sequence"})


def _refuse_foreign(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse a database that holds tables but is not a dcbench store (nothing is added)."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if tables and ("schema_version" not in tables or not tables <= STORE_TABLES):
        extra = sorted(tables - STORE_TABLES) or ["no schema_version"]
        raise UserError(f"--store {path} is an SQLite file but not a dcbench results store "
                        f"(tables {', '.join(extra[:3])}); choose another file")


def check_store(path: str | os.PathLike) -> None:
    """Refuse, before any work and without writing to it, a results store that cannot take
    rows: not SQLite, someone else's database, a newer schema, or corrupt pages. A missing or
    empty file passes (it becomes a new store)."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return
    with open(path, "rb") as handle:
        if handle.read(16) != b"SQLite format 3\x00":
            raise UserError(f"--store {path} is not an SQLite results store; choose another "
                            "file")
    # read-only; and when no connection is open on it (no -wal file: a WAL store's writers
    # keep one), immutable, so that even a read-only open creates no -wal / -shm next to it
    wal = path.with_name(path.name + "-wal")
    mode = "mode=ro" if wal.exists() else "mode=ro&immutable=1"
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?{mode}", uri=True,
                               timeout=BUSY_TIMEOUT_MS / 1000)
    except sqlite3.Error as err:
        raise UserError(f"cannot open results store {path}: {err}") from err
    try:
        _refuse_foreign(conn, path)
        rows = conn.execute("SELECT version FROM schema_version").fetchall() \
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name='schema_version'") \
            .fetchone() else [(0,)]
        if len(rows) != 1 or type(rows[0][0]) is not int or rows[0][0] < 0:
            raise UserError(f"results store {path} is corrupt: its schema_version is "
                            f"{rows!r}, expected one integer")
        if rows[0][0] > SCHEMA_VERSION:
            raise UserError(f"results store has schema version {rows[0][0]}, newer than this "
                            f"dcbench understands ({SCHEMA_VERSION}); upgrade dcbench")
        problems = [r[0] for r in conn.execute("PRAGMA quick_check").fetchall()]
        if problems != ["ok"]:
            first = " ".join(" ".join(problems).split())[:200]  # one line
            raise UserError(f"results store {path} is corrupt ({first}); restore it from a "
                            "backup or choose another --store")
    except sqlite3.DatabaseError as err:
        if isinstance(err, sqlite3.OperationalError) and _is_locked(err):
            raise
        raise UserError(f"results store {path} is unreadable or corrupt: {err}") from err
    finally:
        conn.close()


def check_store_target(path: str | os.PathLike) -> None:
    """A `--store` before any work: a writable place and, when the file exists, a readable
    dcbench store (`check_store`)."""
    check_output_file(Path(path), "--store")
    check_store(path)


def migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
    """Upgrade the schema to `target` in one transaction; returns the version reached."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = schema_version(conn)
        if current > SCHEMA_VERSION:
            raise UserError(
                f"results store has schema version {current}, newer than this dcbench "
                f"understands ({SCHEMA_VERSION}); upgrade dcbench"
            )
        if current == 0:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            conn.execute("INSERT INTO schema_version VALUES (0)")
        for version in range(current, target):
            for statement in MIGRATIONS[version]:
                conn.execute(statement)
            conn.execute("UPDATE schema_version SET version = ?", (version + 1,))
        conn.execute("COMMIT")
        return max(current, target)
    except BaseException:
        conn.execute("ROLLBACK")
        raise


class ResultsStore:
    """The SQLite results store (`$DCBENCH_HOME/results.sqlite` unless `path` is given)."""

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        if path is None:

            path = results_store_path()
        self.path = Path(path)
        if self.path.exists() and self.path.is_dir():
            raise UserError(f"results store {self.path} is a directory; expected a .sqlite file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            _retry(lambda: _refuse_foreign(conn, self.path))
            _retry(lambda: conn.execute("PRAGMA journal_mode=WAL").fetchone())
            if _retry(lambda: schema_version(conn)) < SCHEMA_VERSION:
                _retry(lambda: migrate(conn))
            elif schema_version(conn) > SCHEMA_VERSION:
                migrate(conn)  # raises the "newer than this dcbench" UserError

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000,
                                   isolation_level=None)
        except sqlite3.Error as err:
            raise UserError(f"cannot open results store {self.path}: {err}") from err
        try:
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            yield conn
        except sqlite3.DatabaseError as err:
            if isinstance(err, sqlite3.OperationalError) and _is_locked(err):
                raise
            raise UserError(f"results store {self.path} is unreadable: {err}") from err
        finally:
            conn.close()

    def _write(self, statements: list[tuple[str, list[tuple]]]) -> None:
        """Run (sql, many-params) pairs in one IMMEDIATE transaction, retried when locked."""

        def attempt() -> None:
            with self._connect() as conn:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for sql, params in statements:
                        conn.executemany(sql, params)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise

        _retry(attempt)

    @staticmethod
    def _run_statement(run_id: str, kind: str, config: dict, versions: dict, device: str,
                       started: str, finished: str, extra: dict | None = None,
                       ) -> tuple[str, list[tuple]]:
        if not run_id:
            raise UserError("run_id must be a non-empty string")
        params = (run_id, kind, json.dumps(config, sort_keys=True, default=str),
                  json.dumps(versions, sort_keys=True, default=str), str(device),
                  str(started), str(finished),
                  json.dumps(extra or {}, sort_keys=True, default=str))
        sql = ("INSERT INTO runs (run_id, kind, config_json, versions_json, device, started, "
               "finished, extra_json) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(run_id) DO UPDATE "
               "SET kind=excluded.kind, config_json=excluded.config_json, "
               "versions_json=excluded.versions_json, device=excluded.device, "
               "started=excluded.started, finished=excluded.finished, "
               "extra_json=excluded.extra_json")
        return sql, [params]

    @staticmethod
    def _results_statement(rows: Iterable[Any]) -> tuple[str, list[tuple]]:
        normalized = [normalize_row(row, where=f"row {i}") for i, row in enumerate(rows)]
        fields = list(RESULT_FIELDS)
        params = [
            tuple(NO_SEED if (f == "seed" and row[f] is None) else row[f] for f in fields)
            for row in normalized
        ]
        updates = ", ".join(f"{f}=excluded.{f}" for f in fields if f not in _KEY)
        sql = (f"INSERT INTO results ({', '.join(fields)}) VALUES "
               f"({', '.join('?' for _ in fields)}) ON CONFLICT({', '.join(_KEY)}) "
               f"DO UPDATE SET {updates}")
        return sql, params

    def add_run(self, run_id: str, kind: str, config: dict, versions: dict, device: str,
                started: str, finished: str, extra: dict | None = None) -> None:
        """Record (or replace) the run that produced some results."""
        self._write([self._run_statement(run_id, kind, config, versions, device, started,
                                         finished, extra)])

    def add_results(self, rows: Iterable[Any]) -> int:
        """Validate every row first, then write them all in one transaction; returns the count.

        Rows are `Result` dataclasses, objects with the same attributes, or dicts. A row
        with the same key (run, model, protocol, dialect, dataset, split, layer, metric,
        seed) as a stored one replaces it, so importing twice changes nothing.
        """
        sql, params = self._results_statement(rows)
        if params:
            self._write([(sql, params)])
        return len(params)

    def import_records(self, runs: list[dict], rows: Iterable[Any],
                       outcome_refs: Iterable[dict] = ()) -> int:
        """Write validated runs (`rows.normalize_run` dicts), result rows and references to
        per-item outcome files (dicts of `OUTCOME_FIELDS`) in one transaction."""
        statements = [self._run_statement(**run) for run in runs]
        results = self._results_statement(rows)
        refs = [tuple(NO_SEED if (f == "seed" and ref.get(f) is None) else ref[f]
                      for f in OUTCOME_FIELDS) for ref in outcome_refs]
        statements.append((f"INSERT OR REPLACE INTO outcomes ({', '.join(OUTCOME_FIELDS)}) "
                           f"VALUES ({', '.join('?' for _ in OUTCOME_FIELDS)})", refs))
        self._write([s for s in statements + [results] if s[1]])
        return len(results[1])

    def outcome_refs(self) -> pd.DataFrame:
        """Where each run's per-item outcomes are: one row per (run, split, layer, metric,
        seed) with the kind, the item listing, the item count and the file path."""
        sql = f"SELECT {', '.join(OUTCOME_FIELDS)} FROM outcomes ORDER BY run_id"
        with self._connect() as conn:
            frame = _retry(lambda: pd.read_sql_query(sql, conn))
        frame["seed"] = frame["seed"].astype("Int64").mask(frame["seed"] == NO_SEED)
        return frame

    def results(self, **filters: Any) -> pd.DataFrame:
        """Stored results as a DataFrame, filtered by equality on any result field.

        A filter value may be a list/tuple/set (any of). `seed` is nullable Int64.
        """
        unknown = sorted(set(filters) - set(RESULT_FIELDS))
        if unknown:
            raise UserError(f"unknown result filter(s) {unknown}; fields: {list(RESULT_FIELDS)}")
        clauses, params = [], []
        for name, value in filters.items():
            values = list(value) if isinstance(value, list | tuple | set) else [value]
            values = [NO_SEED if (name == "seed" and v is None) else v for v in values]
            clauses.append(f"{name} IN ({', '.join('?' for _ in values)})")
            params.extend(values)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"SELECT {', '.join(RESULT_FIELDS)} FROM results{where} ORDER BY id"
        with self._connect() as conn:
            frame = _retry(lambda: pd.read_sql_query(sql, conn, params=params))
        values = pd.to_numeric(frame["value"], errors="coerce")
        if (values.isna() & frame["value"].notna()).any():
            bad = frame.loc[values.isna() & frame["value"].notna(), "value"].tolist()[:3]
            raise UserError(f"results store {self.path} holds non-numeric values ({bad!r:.60}) "
                            "in its results table: the file is corrupt")
        seeds = pd.to_numeric(frame["seed"], errors="coerce")
        if seeds.isna().any():
            raise UserError(f"results store {self.path} holds non-integer seeds: the file is "
                            "corrupt")
        frame["seed"] = seeds.astype("Int64").mask(seeds == NO_SEED)
        frame["value"] = values.astype(float)
        return frame

    def runs(self) -> pd.DataFrame:
        """Recorded runs; `config`, `versions` and `extra` are decoded dicts."""
        sql = ("SELECT run_id, kind, config_json, versions_json, device, started, finished, "
               "extra_json FROM runs ORDER BY started, run_id")
        with self._connect() as conn:
            frame = _retry(lambda: pd.read_sql_query(sql, conn))
        for column in ("config", "versions", "extra"):
            texts = frame.pop(f"{column}_json")
            frame[column] = [self._json_object(text, run_id, column)
                             for text, run_id in zip(texts, frame["run_id"], strict=True)]
        return frame

    def _json_object(self, text: Any, run_id: Any, column: str) -> dict:
        """One `runs.*_json` cell decoded, or one line naming the store, run and column."""
        if text is None and column == "extra":
            return {}
        try:
            value = json.loads(text)
        except (TypeError, ValueError, RecursionError):
            value = None
        if not isinstance(value, dict):
            raise UserError(f"results store {self.path} is corrupt: runs.{column}_json of run "
                            f"{run_id} is not a JSON object; restore the store from a backup "
                            "or choose another --store")
        return value
