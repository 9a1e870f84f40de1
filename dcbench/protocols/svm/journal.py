"""The resume journal of the SVM protocols: one JSON line per finished unit of work."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dcbench.core.files import append_line


class Journal:
    """`work_dir/<name>.jsonl`: records keyed by a string; a torn last line is ignored.

    Records carry the run's config hash; a journal written under another config is not
    reused (its records are ignored, never mixed in).
    """

    def __init__(self, work_dir: Path | None, name: str, config_hash: str) -> None:
        self.path = work_dir / f"{name}.jsonl" if work_dir is not None else None
        self.config_hash = config_hash
        self.done: dict[str, Any] = {}
        if self.path is not None and self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if record.get("config_hash") == config_hash:
                    self.done[record["key"]] = record["value"]

    def get(self, key: str) -> Any:
        """The recorded value of `key`, or None."""
        return self.done.get(key)

    def record(self, key: str, value: Any) -> None:
        """Remember `value` under `key` (in memory and, with a work dir, on disk)."""
        self.done[key] = value
        if self.path is not None:
            append_line(self.path, json.dumps(
                {"key": key, "value": value, "config_hash": self.config_hash}))
