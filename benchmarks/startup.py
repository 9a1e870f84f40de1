"""Start-up: wall time of `dcbench --help` and of argument errors, each in a fresh process.

A command that only prints help or rejects its arguments should answer at once. dcbench's
facade and subcommand parsers import no torch, pandas or matplotlib (only the chosen
subcommand's runner does, after its arguments parse). The baseline is the same command with
the eager imports a CLI gets when its package imports its models at import time
(`import dcbench.models.factory` first, as dcbench did before): what a user waits for when
every command loads torch. Figures are medians of fresh interpreters, so disk caches are warm.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from benchmarks.common import Row

#: (what, argv): help screens and argument errors, one per subcommand family
COMMANDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("dcbench --help", ("--help",)),
    ("dcbench eval --help", ("eval", "--help")),
    ("dcbench eval, unknown protocol", ("eval", "--protocol", "nope", "--model", "m",
                                        "--data", "d")),
    ("dcbench train, missing --data", ("train",)),
    ("dcbench viz, unknown option", ("viz", "filters", "--bogus")),
    # issue 26: an argument or data-name error of every subcommand
    ("dcbench train, no such --data folder", ("train", "--recipe", "tiny", "--data",
                                              "/no/such/dir", "--out", "o")),
    ("dcbench eval, no such --data", ("eval", "--protocol", "knn", "--model", "m", "--data",
                                      "/no/such/dir")),
    ("dcbench reproduce, malformed --data", ("reproduce", "thesis-5.5", "--model", "m",
                                             "--data", "voc")),
    ("dcbench reproduce, unknown data name", ("reproduce", "thesis-5.5", "--model", "m",
                                              "--data", "vocc=/")),
    ("dcbench hub, unknown layout", ("hub", "convert", "a", "b", "--layout", "nope")),
    ("dcbench leaderboard, unknown format", ("leaderboard", "show", "--format", "docx")),
    ("dcbench data, negative seed", ("data", "synth", "--out", "x", "--seed", "-1")),
    ("dcbench demo, unknown option", ("demo", "--bogus")),
    ("dcbench bench, unknown option", ("bench", "--bogus")),
)

_LAZY = "import sys; from dcbench.cli.entry import main; sys.exit(main({argv!r}))"
_EAGER = ("import sys; import dcbench.models.factory; from dcbench.cli.entry import main; "
          "sys.exit(main({argv!r}))")


def wall_seconds(code: str, repeat: int) -> float:
    """Median wall seconds of `python -c code` in fresh interpreters (output discarded)."""
    times = []
    for _ in range(max(repeat, 1)):
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=300)
        times.append(time.perf_counter() - start)
        if proc.returncode not in (0, 2):
            raise RuntimeError(f"{code!r} exited {proc.returncode}: {proc.stderr[-500:]}")
    return statistics.median(times)


def run(quick: bool) -> list[Row]:
    """One row per command: dcbench's start-up vs the eager-import baseline."""
    repeat = 1 if quick else 3
    commands = COMMANDS[:2] if quick else COMMANDS
    rows = []
    for what, argv in commands:
        lazy = wall_seconds(_LAZY.format(argv=list(argv)), repeat)
        eager = wall_seconds(_EAGER.format(argv=list(argv)), repeat)
        rows.append(Row(benchmark="startup", what=what, dcbench=lazy, unit="s",
                        baseline_name="eager torch import", baseline=eager,
                        notes=f"median of {repeat} fresh processes"))
    return rows
