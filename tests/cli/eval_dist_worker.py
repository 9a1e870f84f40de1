"""Run several `dcbench eval` command lines, one after the other, in this process.

`torchrun --nproc_per_node N tests/cli/eval_dist_worker.py ARGV.json [READS_DIR]` runs every
command of the JSON list (each a list of words after `dcbench`) on the N processes, so one
launch (one interpreter start and torch import per rank) covers many protocols; each command
joins and leaves the process group as `torchrun -m dcbench eval ...` does. Prints `rc N` per
command on the real stderr and exits with the largest status.

With READS_DIR, every image the DALI input pipeline reads (`PlannedImages.__getitem__`:
the file's bytes, then DALI or the PIL fallback) is recorded as `[path, through DALI]` and
written to `READS_DIR/rank-<RANK>.json` at the end (the tests count the reads per file).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from dcbench.cli.entry import main
from dcbench.data.planned_images import Encoded, PlannedImages


def record_reads(reads: list[list[Any]]) -> Any:
    """A `PlannedImages.__getitem__` that appends `[path, is a DALI item]` to `reads` per
    call (set it on the class: monkeypatch in a test, plain assignment in this worker)."""
    original = PlannedImages.__getitem__

    def counting(self: PlannedImages, index: int) -> Any:
        item = original(self, index)
        reads.append([self.samples[index][0], isinstance(item[0], Encoded)])
        return item

    return counting


if __name__ == "__main__":
    reads: list[list[Any]] = []
    if len(sys.argv) > 2:
        PlannedImages.__getitem__ = record_reads(reads)  # type: ignore[method-assign]
    worst = 0
    for argv in json.loads(Path(sys.argv[1]).read_text(encoding="utf-8")):
        rc = main(argv)
        print(f"rc {rc} {argv[2] if len(argv) > 2 else ''}", file=sys.__stderr__, flush=True)
        worst = max(worst, rc)
    if len(sys.argv) > 2:
        out = Path(sys.argv[2]) / f"rank-{os.environ.get('RANK', '0')}.json"
        out.write_text(json.dumps(reads), encoding="utf-8")
    sys.exit(worst)
