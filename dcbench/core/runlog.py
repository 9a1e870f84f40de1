"""The one reader of a training run's `log.jsonl` (one JSON object per finished epoch).

Training appends a line per epoch atomically, but a run killed mid-write can leave a torn
last line: it is skipped, never an error. Everything that reads a run's log (resume, the
curves, the report, model cards, the demo summary) goes through `parse_log_records`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def parse_log_records(text: str) -> list[dict[str, Any]]:
    """JSON-lines text -> the records that are JSON objects (torn or foreign lines skipped)."""
    records = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def read_log_records(path: str | Path) -> list[dict[str, Any]]:
    """The records of the log file at `path` ([] when the file does not exist yet)."""
    path = Path(path)
    if not path.is_file():
        return []
    return parse_log_records(path.read_text(encoding="utf-8", errors="replace"))
