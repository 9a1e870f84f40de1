"""The result row (defined once, for the protocols that make rows and the leaderboards that
store them), its validation, and results files made elsewhere (e.g. on a cluster).

A result row is the long-format `Result` of DESIGN.md. Rows arrive as `Result` dataclasses,
plain objects, or dicts parsed from JSON; all of them go through `normalize_row`, which
refuses anything malformed with a one-line `UserError` naming the row and the field.
"""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dcbench.core.errors import UserError


@dataclasses.dataclass(frozen=True)
class Result:
    """One long-format result row: a single number and everything needed to trust it."""

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
    seed: int
    config_hash: str
    dcbench_version: str
    code_revision: str
    device: str
    timestamp: str

    def as_dict(self) -> dict[str, Any]:
        """A plain dict (JSON / SQLite / pandas friendly)."""
        return dataclasses.asdict(self)


RESULT_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Result))
REQUIRED_FIELDS: tuple[str, ...] = (
    "run_id", "model", "protocol", "dialect", "dataset", "split", "layer", "metric", "value",
)
RUN_FIELDS: tuple[str, ...] = (
    "run_id", "kind", "config", "versions", "device", "started", "finished", "extra",
)


def now_utc() -> str:
    """The current time as an ISO-8601 UTC string (the timestamp format of results)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _as_dict(row: Any) -> dict[str, Any]:
    if isinstance(row, dict):
        return dict(row)
    if dataclasses.is_dataclass(row) and not isinstance(row, type):
        return dataclasses.asdict(row)
    if all(hasattr(row, f) for f in REQUIRED_FIELDS):
        return {f: getattr(row, f) for f in RESULT_FIELDS if hasattr(row, f)}
    raise UserError(f"a result row must be a Result or a JSON object, got {type(row).__name__}")


def normalize_row(row: Any, where: str = "row") -> dict[str, Any]:
    """Check one result row and return it as a dict with every field, defaults filled in."""
    data = _as_dict(row)
    unknown = sorted(set(data) - set(RESULT_FIELDS))
    if unknown:
        raise UserError(f"{where}: unknown field(s) {unknown}; fields: {', '.join(RESULT_FIELDS)}")
    missing = [f for f in REQUIRED_FIELDS if data.get(f) in (None, "")]
    if missing:
        raise UserError(f"{where}: missing required field(s) {missing}")
    out: dict[str, Any] = {}
    for field in RESULT_FIELDS:
        value = data.get(field)
        if field == "value":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise UserError(f"{where}: value must be a number, got {value!r}")
            if not math.isfinite(float(value)):
                raise UserError(f"{where}: value must be finite, got {value!r}")
            out[field] = float(value)
        elif field == "seed":
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise UserError(f"{where}: seed must be an integer or null, got {value!r}")
            if value is not None and value < 0:
                raise UserError(f"{where}: seed must be >= 0, got {value}")
            out[field] = value
        elif field == "timestamp":
            out[field] = _timestamp(value, where)
        else:
            if value is None:
                value = ""
            if not isinstance(value, str):
                raise UserError(f"{where}: {field} must be a string, got {value!r}")
            out[field] = value
    return out


def _timestamp(value: Any, where: str) -> str:
    if value in (None, ""):
        return now_utc()
    if not isinstance(value, str):
        raise UserError(f"{where}: timestamp must be an ISO-8601 string, got {value!r}")
    try:
        datetime.fromisoformat(value)
    except ValueError as err:
        raise UserError(f"{where}: timestamp {value!r} is not ISO-8601") from err
    return value


def normalize_run(run: Any, where: str = "run") -> dict[str, Any]:
    """Check one run record (as written by `ResultsStore.add_run`) and fill defaults."""
    if not isinstance(run, dict):
        raise UserError(f"{where}: a run must be a JSON object, got {type(run).__name__}")
    unknown = sorted(set(run) - set(RUN_FIELDS))
    if unknown:
        raise UserError(f"{where}: unknown field(s) {unknown}; fields: {', '.join(RUN_FIELDS)}")
    if not isinstance(run.get("run_id"), str) or not run["run_id"]:
        raise UserError(f"{where}: run_id must be a non-empty string")
    out = {"run_id": run["run_id"], "kind": run.get("kind") or "eval",
           "config": run.get("config") or {}, "versions": run.get("versions") or {},
           "device": run.get("device") or "", "started": run.get("started") or "",
           "finished": run.get("finished") or "", "extra": run.get("extra") or {}}
    for field in ("config", "versions", "extra"):
        if not isinstance(out[field], dict):
            raise UserError(f"{where}: {field} must be a JSON object")
    for field in ("kind", "device", "started", "finished"):
        if not isinstance(out[field], str):
            raise UserError(f"{where}: {field} must be a string")
    return out


def parse_results_json(text: str, source: str) -> tuple[list[dict], list[dict]]:
    """Parse a results file: a JSON list of rows, JSON lines, or {"run": ..., "results": [...]}.

    Returns (runs, rows), all validated. Raises UserError on anything malformed, so a
    caller can validate completely before writing anything.
    """
    text = text.strip()
    if not text:
        raise UserError(f"{source}: empty file; expected JSON result rows")
    try:
        payload: Any = json.loads(text)
    except json.JSONDecodeError as err:
        payload = _json_lines(text, source, err)
    runs: list[Any] = []
    if isinstance(payload, dict):
        unknown = sorted(set(payload) - {"run", "runs", "results"})
        if unknown or "results" not in payload:
            raise UserError(f"{source}: expected a list of rows or an object with keys "
                            f"'results' (and optional 'run'/'runs'), got keys {sorted(payload)}")
        runs = list(payload.get("runs") or []) + ([payload["run"]] if payload.get("run") else [])
        payload = payload["results"]
    if not isinstance(payload, list):
        raise UserError(f"{source}: results must be a JSON list of objects")
    if not payload:
        raise UserError(f"{source}: no result rows")
    rows = [normalize_row(r, where=f"{source}: row {i}") for i, r in enumerate(payload)]
    checked_runs = [normalize_run(r, where=f"{source}: run {i}") for i, r in enumerate(runs)]
    return checked_runs, rows


def _json_lines(text: str, source: str, first_error: json.JSONDecodeError) -> list[Any]:
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        raise UserError(f"{source}: not valid JSON ({first_error.msg} at line "
                        f"{first_error.lineno} column {first_error.colno})") from first_error
    rows = []
    for number, line in enumerate(lines, start=1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise UserError(f"{source}: line {number} is not valid JSON ({err.msg})") from err
    return rows


def read_results_file(path: str | Path) -> tuple[list[dict], list[dict]]:
    """Read and validate a results JSON / JSONL file; see `parse_results_json`."""
    path = Path(path)
    if path.is_dir():
        if (path / "results.json").is_file() or (path / "run.json").is_file():
            raise UserError(f"{path} is a run folder: use --from {path}")
        raise UserError(f"{path} is a folder, not a results file (results.json or .jsonl)")
    if not path.is_file():
        raise UserError(f"results file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read {path}: {err}") from err
    return parse_results_json(text, str(path))
