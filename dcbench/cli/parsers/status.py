"""Arguments of `dcbench status` (light: no torch, pandas or matplotlib; the runner,
`dcbench.cli.status`, reads only files of the run folder)."""

from __future__ import annotations

import argparse

HELP = ("one screen about a run folder of train, eval, reproduce or demo: what it is, how far "
        "it got, time per epoch and ETA, last metrics, whether its process is alive, and the "
        "command that resumes it")
EPILOG = """examples:
  dcbench status runs/tiny                  # a dcbench train run, going or stopped
  dcbench status runs/lin-places            # a dcbench eval run dir (--out)
  watch -n 60 dcbench status runs/km-sob    # refresh every minute
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `dcbench status`."""
    parser.add_argument("run_dir", metavar="RUN_DIR",
                        help="the --out folder of dcbench train / eval / reproduce / demo")
