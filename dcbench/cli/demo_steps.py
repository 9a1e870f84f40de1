"""The demo's step driver: a planned list of CLI commands run in-process, with one
whole-demo progress bar and an overall ETA.

Each planned step carries an expected cost (in image passes, from the demo's sizes: see
`cli/demo.py`) and a kind (`data`, `train`, `eval:<protocol>`, `report`). The ETA is the
remaining steps' expected cost times a measured rate in seconds per unit: the rate of
finished steps of the same kind where there is one, else the rate of all finished steps,
else a reference rate. So the estimate re-weights itself as steps finish (a loaded machine
is seen after the first step; a slow protocol after its first run).
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dcbench.cli.entry import main
from dcbench.core.errors import UserError
from dcbench.core.files import write_json
from dcbench.core.progress import progress_bar

#: seconds per unit of expected cost before anything was measured (0.00093 for the demo and
#: 0.00104 for `--quick` on the quiet 2-core VM, see `demo_costs`); only the first ETA uses it
REFERENCE_RATE = 0.001
BAR_TICKS = 1000  # the bar counts per-mille of the whole demo


@dataclass
class PlannedStep:
    """One `dcbench ...` command of the demo; `argv` may be built when the step starts."""

    title: str
    argv: list[str] | Callable[[], list[str]]
    cost: float
    kind: str
    output: Path | None = None
    before: Callable[[], None] | None = None
    after: Callable[[], None] | None = None
    always: bool = False  # re-run on --resume even if done (the report of every result)


@dataclass
class Measured:
    """What finished: (kind, expected cost, seconds) per step that actually ran."""

    runs: list[tuple[str, float, float]] = field(default_factory=list)

    def rate(self, kind: str) -> float:
        """Seconds per unit for `kind`: its own finished steps, else all, else the reference."""
        for chosen in ([r for r in self.runs if r[0] == kind], self.runs):
            cost = sum(r[1] for r in chosen)
            if cost > 0:
                return sum(r[2] for r in chosen) / cost
        return REFERENCE_RATE


def eta_seconds(remaining: Sequence[tuple[str, float]], measured: Measured) -> float:
    """Expected seconds left: each remaining (kind, cost) at its kind's measured rate."""
    return sum(cost * measured.rate(kind) for kind, cost in remaining)


def clock(seconds: float) -> str:
    """`mm:ss` (or `h:mm:ss` past an hour)."""
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else \
        f"{rest // 60:02d}:{rest % 60:02d}"


class Steps:
    """Runs the planned CLI commands in-process, echoing and timing each, recording the
    finished ones in the state file, with a whole-demo bar (stderr) and ETA (stdout)."""

    def __init__(self, state_file: Path, state: dict, bar: bool | None = None) -> None:
        self.started = time.perf_counter()
        self.state_file = state_file
        self.state = state
        self.state.setdefault("done", [])
        self.state.setdefault("seconds", {})
        self.plan: list[PlannedStep] = []
        self.measured = Measured()
        self.bar_enabled = sys.stderr.isatty() if bar is None else bar

    def add(self, step: PlannedStep) -> None:
        """Append a step to the plan (nothing runs until `run_all`)."""
        self.plan.append(step)

    def run_all(self) -> None:
        """Run every planned step in order, skipping those finished before (`--resume`)."""
        bar = progress_bar(BAR_TICKS, "dcbench demo", unit="‰", enabled=self.bar_enabled,
                           leave=True)
        bar.bar_format = "{desc}: {percentage:3.0f}%|{bar}| {postfix}"
        for step in self.plan:  # steps an interrupted run finished: their measured seconds
            key = " ".join(step.argv) if isinstance(step.argv, list) else None
            seconds = self.state["seconds"].get(key) if key in self.state["done"] else None
            if seconds is not None and not step.always:
                self.measured.runs.append((step.kind, step.cost, float(seconds)))
        try:
            for index, step in enumerate(self.plan):
                self._run(index, step, bar)
            self._show(bar, len(self.plan))
        finally:
            bar.close()

    def remaining(self, start: int) -> list[tuple[str, float]]:
        """(kind, cost) of the steps from `start` on that still have to run."""
        return [(s.kind, s.cost) for s in self.plan[start:]
                if s.always or not isinstance(s.argv, list)
                or " ".join(s.argv) not in self.state["done"]]

    def status(self, index: int) -> tuple[float, float]:
        """(fraction of the demo done, seconds left) before step `index` runs."""
        eta = eta_seconds(self.remaining(index), self.measured)
        spent = sum(r[2] for r in self.measured.runs)
        if spent + eta <= 0:
            return (1.0 if index >= len(self.plan) else 0.0), eta
        return spent / (spent + eta), eta

    def _show(self, bar: object, index: int) -> tuple[float, float]:
        fraction, eta = self.status(index)
        bar.n = int(round(fraction * BAR_TICKS))  # type: ignore[attr-defined]
        bar.set_postfix_str(f"elapsed {self.elapsed()}, ETA {clock(eta)}")  # type: ignore[attr-defined]
        return fraction, eta

    def _run(self, index: int, step: PlannedStep, bar: object) -> None:
        if step.before is not None:
            step.before()
        argv = step.argv() if callable(step.argv) else step.argv
        key = " ".join(argv)
        if key in self.state["done"] and not step.always:
            print(f"[{self.elapsed()}] {step.title}: done before, skipped", flush=True)
            return
        if step.output is not None and step.output.exists():
            shutil.rmtree(step.output)
        fraction, eta = self._show(bar, index)
        print(f"\n[{self.elapsed()}] {step.title}   (step {index + 1}/{len(self.plan)}, "
              f"demo {fraction:.0%} done, ETA {clock(eta)})\n  $ dcbench {key}", flush=True)
        t0 = time.perf_counter()
        code = main(argv)
        if code != 0:
            raise UserError(f"demo step failed (exit {code}): dcbench {key}")
        if step.after is not None:
            step.after()
        seconds = time.perf_counter() - t0
        self.measured.runs.append((step.kind, step.cost, seconds))
        if key not in self.state["done"]:
            self.state["done"].append(key)
        self.state["seconds"][key] = round(seconds, 3)
        write_json(self.state_file, self.state)
        print(f"  ({seconds:.1f} s)", flush=True)
        self._show(bar, index + 1)

    def elapsed(self) -> str:
        """Wall time since the demo started, `mm:ss`."""
        return clock(time.perf_counter() - self.started)
