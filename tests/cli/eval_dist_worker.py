"""Run several `dcbench eval` command lines, one after the other, in this process.

`torchrun --nproc_per_node N tests/cli/eval_dist_worker.py ARGV.json` runs every command of
the JSON list (each a list of words after `dcbench`) on the N processes, so one launch (one
interpreter start and torch import per rank) covers many protocols; each command joins and
leaves the process group as `torchrun -m dcbench eval ...` does. Prints `rc N` per command
on the real stderr and exits with the largest status.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from dcbench.cli.entry import main

if __name__ == "__main__":
    worst = 0
    for argv in json.loads(Path(sys.argv[1]).read_text(encoding="utf-8")):
        rc = main(argv)
        print(f"rc {rc} {argv[2] if len(argv) > 2 else ''}", file=sys.__stderr__, flush=True)
        worst = max(worst, rc)
    sys.exit(worst)
