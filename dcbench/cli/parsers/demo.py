"""Arguments of `dcbench demo` (light: no torch, pandas or matplotlib, so `--help` and
argument errors answer before torch is imported; the runner is `dcbench.cli.demo`)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "run everything end to end on built-in data (no data, no network needed)"
EPILOG = """examples:
  dcbench demo                      # ~10 minutes on 2 CPU cores: the numbers in the README
  dcbench demo --quick              # ~1 minute: smaller data, fewer epochs (used by the tests)
  dcbench demo --out /tmp/demo --force
  dcbench demo --resume             # after Ctrl-C: finished steps are skipped
afterwards (the results are in the default store, $DCBENCH_HOME/results.sqlite):
  dcbench leaderboard compare random-sobel tiny-sobel
  open dcbench-demo/report.html
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `dcbench demo`."""
    parser.add_argument("--out", type=Path, default=Path("dcbench-demo"),
                        help="output folder (data, runs, models, evals, report.html)")
    parser.add_argument("--store", type=Path, default=None,
                        help="results store (default: $DCBENCH_HOME/results.sqlite, the one "
                             "`dcbench leaderboard` reads)")
    parser.add_argument("--quick", action="store_true", help="the ~1-minute version")
    parser.add_argument("--force", action="store_true", help="replace an existing --out")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted demo in --out, skipping finished steps")
    parser.add_argument("--seed", type=int, default=0, help="seed of data, init and probes")
