"""Import results made elsewhere (a cluster, another machine) into the results store.

`import_file(path)` takes a results JSON/JSONL file; `import_run_dir(dir)` takes an eval
run directory holding `results.json` (or `results.jsonl`) and, when present, its resolved
`config.yaml`/`config.json` and `versions.json`, which become the run record, and its
`outcomes.safetensors` (per-item outcomes), which the store references by path. Everything is
validated before anything is written, and the write is one transaction.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from dcbench.core.errors import UserError
from dcbench.core.outcomes import OUTCOMES_FILE, read_outcomes
from dcbench.core.rows import normalize_run, read_results_file
from dcbench.leaderboards.store import ResultsStore

RESULT_FILES = ("results.json", "results.jsonl")


def import_file(path: str | os.PathLike, store: ResultsStore) -> tuple[int, int]:
    """Validate and import one results file; returns (runs written, rows written)."""
    runs, rows = read_results_file(path)
    return len(runs), store.import_records(runs, rows)


def import_run_dir(run_dir: str | os.PathLike, store: ResultsStore) -> tuple[int, int]:
    """Validate and import an eval run directory; returns (runs written, rows written)."""
    runs, rows = read_run_dir(run_dir)
    refs = read_outcome_refs(run_dir, rows)
    return len(runs), store.import_records(runs, rows, refs)


def read_outcome_refs(run_dir: str | os.PathLike, rows: list[dict]) -> list[dict]:
    """References (store `outcomes` rows) to the run dir's per-item outcomes file, when it
    has one (read and checked now: a corrupt file is a UserError before anything is written);
    the run is the rows' one run id."""
    path = Path(run_dir) / OUTCOMES_FILE
    if not path.is_file():
        return []
    entries = read_outcomes(path)
    run_ids = sorted({str(row["run_id"]) for row in rows})
    if len(run_ids) != 1:
        raise UserError(f"{path} belongs to one run, but the results next to it hold "
                        f"{len(run_ids)} run ids")
    return [{"run_id": run_ids[0], "split": e.split, "layer": e.layer, "metric": e.metric,
             "seed": e.seed, "kind": e.kind, "listing": e.listing, "n_items": e.n_items,
             "path": str(path.resolve())} for e in entries]


def read_run_dir(run_dir: str | os.PathLike) -> tuple[list[dict], list[dict]]:
    """The validated (runs, rows) of an eval run directory (nothing is written)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir} is not a directory; expected an eval run directory")
    found = [run_dir / name for name in RESULT_FILES if (run_dir / name).is_file()]
    if not found:
        raise UserError(f"{run_dir} holds none of {', '.join(RESULT_FILES)}",
                        detail="expected layout: RUN_DIR/results.json (list of result rows), "
                               "optional RUN_DIR/config.yaml and RUN_DIR/versions.json")
    runs, rows = read_results_file(found[0])
    if not runs:
        run_ids = sorted({row["run_id"] for row in rows})
        config, versions = _read_mapping(run_dir, ("config.yaml", "config.json")), \
            _read_mapping(run_dir, ("versions.json",))
        stamps = sorted(row["timestamp"] for row in rows)
        for run_id in run_ids:
            devices = sorted({r["device"] for r in rows if r["run_id"] == run_id} - {""})
            runs.append(normalize_run({
                "run_id": run_id, "kind": "eval", "config": config, "versions": versions,
                "device": ", ".join(devices), "started": stamps[0], "finished": stamps[-1],
                "extra": {"imported_from": str(run_dir.resolve())},
            }, where=str(run_dir)))
    return runs, rows


def _read_mapping(run_dir: Path, names: tuple[str, ...]) -> dict:
    for name in names:
        path = run_dir / name
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8-sig")
            data = json.loads(text) if name.endswith(".json") else yaml.safe_load(text)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as err:
            raise UserError(f"{path}: cannot parse ({err})") from err
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise UserError(f"{path}: expected a mapping at the top level")
        return data
    return {}
