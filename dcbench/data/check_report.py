"""The report a dataset check fills in, and the sampled decode check it runs.

Shared by the folder checks (`check.py`) and the VOCdevkit checks (`voc_check.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dcbench.data.decode import decode_image


@dataclass
class CheckReport:
    """Counts (`lines`), informational `notes`, and `problems` found in a dataset tree."""

    root: Path
    fmt: str
    lines: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def format(self) -> str:
        """Human-readable report: counts, notes, then every problem."""
        out = [f"dataset {self.root} (format {self.fmt})", *self.lines]
        out += [f"note: {n}" for n in self.notes]
        if self.problems:
            out.append(f"{len(self.problems)} problem(s):")
            out += [f"  - {p}" for p in self.problems]
        else:
            out.append("no problems found")
        return "\n".join(out)


def decode_problems(paths: Sequence[str], sample: int, workers: int) -> list[str]:
    """Decode `paths` (or `sample` evenly spaced ones when sample > 0) and list failures."""
    if sample and len(paths) > sample:
        picks = np.linspace(0, len(paths) - 1, sample).round().astype(int)
        paths = [paths[i] for i in sorted(set(picks.tolist()))]

    def one(path: str) -> str | None:
        result = decode_image(path, allow_truncated=True)
        if result.image is None:
            return f"{path}: undecodable ({result.problem})"
        if result.partial:
            return f"{path}: truncated (only partly decodable), skipped by train and eval"
        return None

    with ThreadPoolExecutor(max(1, workers)) as pool:
        return [p for p in pool.map(one, paths) if p is not None]
