"""What `dcbench reproduce` reports live (section `reproduce`, step = the planned run's
number): each run's status as it starts and ends, the number of finished runs, and the
table's values and deltas (model minus the reference row) as each run's rows arrive."""

from __future__ import annotations

import math
import re
from pathlib import Path

from dcbench.core.tracking import Tracker
from dcbench.leaderboards import reproduce as planner
from dcbench.leaderboards.reproduce_table import plan_results, reproduce_frame
from dcbench.leaderboards.store import ResultsStore
from dcbench.leaderboards.tables import KIND_PUBLISHED, delta_column

SECTION = "reproduce"


def column_tag(column: str) -> str:
    """A table column as a tag part (TensorBoard keeps letters, digits, '-', '_', '.')."""
    return re.sub(r"[^-\w.]+", "_", column).strip("_") or "column"


def table_values(plan: planner.Plan, store: Path, run_ids: dict[str, str], model: str,
                 against: str | None) -> dict[str, float]:
    """`value/COLUMN` and `delta/COLUMN` of the model's row, from the finished runs' rows."""
    if not run_ids:
        return {}
    results = ResultsStore(store).results(run_id=list(run_ids.values()))
    frame = reproduce_frame(plan, plan_results(results, plan, run_ids), model, against)
    ours = frame[frame["kind"] != KIND_PUBLISHED]
    values: dict[str, float] = {}
    for column in plan.table.value_columns:
        for prefix, name in (("value", column), ("delta", delta_column(column))):
            if name in ours and len(ours):
                value = ours[name].iloc[0]
                if isinstance(value, int | float) and math.isfinite(value):
                    values[f"{prefix}/{column_tag(column)}"] = float(value)
    return values


def report_run(tracker: Tracker, number: int, name: str, state: str, finished: int,
               total: int, table: dict[str, float]) -> None:
    """One planned run's status (`started/RUN` when it starts; `status/RUN`: finished or kept
    when it ends) and the table so far."""
    if state == "started":
        tracker.text(SECTION, number, f"started/{column_tag(name)}", state)
        return
    tracker.text(SECTION, number, f"status/{column_tag(name)}", state)
    tracker.scalars(SECTION, number, {"runs/finished": finished, "runs/total": total, **table})
