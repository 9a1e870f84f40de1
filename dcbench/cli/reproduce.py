"""`dcbench reproduce TABLE --model SPEC --data NAME=ROOT ...`: every run a published table needs.

The plan comes from the table's metadata (`leaderboards.reproduce`); each run is a real
`dcbench eval` command (printed, and run in-process), with its own run dir under `--out`,
so `--resume` keeps finished runs and continues an interrupted one from its checkpoints.
The results go to the store; the command ends with the table (published rows, the model's
row, deltas) in the terminal, and `table.md`, `table.tex`, `table.html` in `--out`.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dcbench.cli.config_checks import check_protocol_config
from dcbench.cli.entry import build_parser
from dcbench.cli.eval_dist import eval_processes, from_main, is_launch_main, launched_processes
from dcbench.cli.parsers.watch import tracking_options
from dcbench.cli.reproduce_live import SECTION, report_run, table_values
from dcbench.cli.resume_hint import INTERRUPTED, report_interrupt
from dcbench.core.devices import resolve_device
from dcbench.core.distributed import current
from dcbench.core.errors import UserError
from dcbench.core.files import check_output_dir, is_writer, write_json, write_text
from dcbench.core.home import dcbench_home, results_store_path
from dcbench.core.liveness import record_process
from dcbench.core.provenance import versions
from dcbench.core.state_files import read_json_state
from dcbench.core.trackers import open_tracker
from dcbench.core.tracking import activated
from dcbench.leaderboards import reproduce as planner
from dcbench.leaderboards.paired_table import NO_DATA
from dcbench.leaderboards.published import list_tables, table_info
from dcbench.leaderboards.reproduce_eta import (
    HOW,
    count_images,
    estimate_seconds,
    format_duration,
    measure_rates,
)
from dcbench.leaderboards.reproduce_table import (
    plan_results,
    reference_row,
    render_formats,
    reproduce_display,
    reproduce_frame,
    terminal_text,
)
from dcbench.leaderboards.store import ResultsStore, check_store_target
from dcbench.models.factory import load_model
from dcbench.protocols.base import get_protocol

PLAN_FILE = "plan.json"
PLAN_KEYS = {"table": str, "model": str, "schedule": str, "runs": dict}


def list_plans() -> str:
    """The `--list` text: every shipped table, its runs and the data names it reads."""
    lines = []
    for info in list_tables():
        plans = planner.column_plans(info.id)
        if not plans:
            lines.append(f"{info.id}\n    reference only: no dcbench protocol measures its "
                         "columns (no plan)")
            continue
        plan = planner.make_plan(info.id, {})
        data = ", ".join(planner.table_data(info.id))
        lines.append(f"{info.id}: {info.title}\n    needs --data {data}")
        for run in plan.runs:
            extra = [f"dialect {run.dialect}"]
            if run.layers:
                extra.append("layers " + ",".join(run.layers))
            if run.train_layers:
                extra.append(f"train layers {run.train_layers}"
                             + (" + BN scales" if run.train_bn_scales else ""))
            if run.arch:
                extra.append(f"{run.arch} models")
            lines.append(f"    {run.protocol} on {run.data} ({'; '.join(extra)}) -> "
                         + ", ".join(run.columns))
    lines.append("\ndata names (--data NAME=ROOT):")
    lines += [f"  {name:10s} {text}" for name, (text, _) in planner.DATA_NAMES.items()]
    return "\n".join(lines) + "\n"


def _default_out(table: str, model: str, schedule: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(model.rstrip("/")).name or model)[:40]
    digest = hashlib.sha256(model.encode()).hexdigest()[:8]
    return dcbench_home() / "reproduce" / table / f"{slug}-{digest}-{schedule}"


def _configs(plan: planner.Plan, args: argparse.Namespace) -> dict[str, Any]:
    """Each runnable run's resolved config (the same resolution `dcbench eval` does)."""
    configs = {}
    for run in plan.runs:
        proto = get_protocol(run.protocol)
        layer: dict[str, Any] = {}
        if run.layers:
            layer["layers"] = list(run.layers)
        if run.train_layers:
            layer["train_layers"] = run.train_layers
        if run.train_bn_scales:
            layer["train_bn_scales"] = True
        if args.fast and planner.takes_fast(run.protocol):
            layer["fast"] = True
        if args.seed is not None:
            layer["seed"] = args.seed
        config = proto.resolve_config(
            dialect=run.dialect, schedule=args.schedule, layers=[layer],
            overrides=list(planner.applicable_overrides(run.protocol, args.overrides)))
        check_protocol_config(config, proto.name)
        configs[run.name] = config
    return configs


def _check_data(plan: planner.Plan, configs: dict[str, Any]) -> None:
    """Every runnable eval's `Protocol.check_data` on its data, before the plan is printed
    or written: a refusal is one line naming the run."""
    for run in plan.runs:
        if run.runs:
            try:
                get_protocol(run.protocol).check_data(run.root, configs[run.name])
            except UserError as err:
                raise UserError(f"{run.name}: {err}") from None


def _argv(run: planner.PlannedRun, args: argparse.Namespace, out: Path) -> list[str]:
    return run.eval_argv(
        args.model, schedule=args.schedule, seed=args.seed, out=out,
        overrides=planner.applicable_overrides(run.protocol, args.overrides),
        fast=bool(args.fast and planner.takes_fast(run.protocol)), store=args.store,
        device=args.device)


def _state(out: Path, args: argparse.Namespace, runs: dict[str, list[str]]) -> dict:
    """Check --out against --resume; the saved plan must agree with this one."""
    check_output_dir(out)
    plan_file = out / PLAN_FILE
    settings = {"table": args.table, "model": args.model, "schedule": args.schedule}
    if plan_file.is_file():
        if not args.resume:
            raise UserError(f"{out} already holds a reproduce plan; pass --resume to continue "
                            "it or choose another --out")
        saved = read_json_state(plan_file, "reproduce plan", keys=PLAN_KEYS,
                                hint="start the plan again with another --out")
        if {k: saved.get(k) for k in settings} != settings:
            raise UserError(f"{out} holds the plan of {saved.get('table')} for "
                            f"{saved.get('model')} ({saved.get('schedule')}); resume with the "
                            "same table, --model and --schedule")
        for name, argv in runs.items():
            if name in saved["runs"] and saved["runs"][name] != argv \
                    and (out / name / "run.json").is_file():
                raise UserError(f"run {name} in {out} was started as `dcbench "
                                f"{' '.join(saved['runs'][name])}`; resume with the same "
                                "--data, --seed, --set, --fast and --store")
        return {**saved, "runs": {**saved["runs"], **runs}}
    if args.resume:
        raise UserError(f"nothing to resume in {out} (no {PLAN_FILE})")
    if out.exists() and any(out.iterdir()):
        raise UserError(f"--out {out} exists and is not empty; choose a new folder")
    return {**settings, "runs": runs}


def _print_plan(plan: planner.Plan, argvs: dict[str, list[str]], args: argparse.Namespace,
                model: Any, configs: dict[str, Any], out: Path) -> None:
    """The dry-run: each run's command, the data it reads, and its estimated time. Printed
    only once every count and rate is in: a refusal on the way is its one error line."""
    info = plan.table
    lines: list[str] = []
    lines.append(f"dcbench reproduce {info.id}: {info.title}\nmodel {args.model}, schedule "
                 f"{args.schedule}, plan folder {out}")
    device = resolve_device(args.device).type if args.device is None else args.device
    rates = measure_rates(model, device) if argvs else None
    total = 0.0
    counted: dict[str, dict[str, int]] = {}
    for number, run in enumerate(plan.runs, start=1):
        head = f"\n[{number}/{len(plan.runs)}] {run.name} -> columns {', '.join(run.columns)}"
        if run.skip:
            lines.append(f"{head}\n    {run.skip}")
            continue
        if run.data not in counted:
            counted[run.data] = count_images(run.data, run.root)
        counts = counted[run.data]
        seconds = estimate_seconds(run.protocol, configs[run.name], counts, rates,
                                   processes=launched_processes())
        finished = (out / run.name / "results.json").is_file()
        total += 0.0 if finished else seconds
        reads = ", ".join(f"{k} {v:,}" for k, v in counts.items())
        lines.append(f"{head}\n    $ {planner.command_line(argvs[run.name])}\n"
                     f"    reads {run.data} at {run.root}: {reads} images\n"
                     f"    estimated {format_duration(seconds)}"
                     + (" (finished before: kept with --resume)" if finished else ""))
    if rates is not None:
        lines.append(f"\nestimated total {format_duration(total)}; {rates.describe()}.\n{HOW}.")
    else:
        lines.append("\nnothing would run: give --data for the columns above")
    print("\n".join(lines))


def run(args: argparse.Namespace) -> int:
    """Validate everything, then plan, run (or print) the evals and print the table."""
    if args.list:
        print(list_plans(), end="")
        return 0
    if not args.table or not args.model:
        raise UserError("dcbench reproduce needs TABLE and --model (see dcbench reproduce "
                        "--list)")
    info = table_info(args.table)
    args.table = info.id
    planner.make_plan(info.id, {})  # a reference-only table is refused here
    roots = planner.parse_data(args.data, info.id)
    model = load_model(args.model)
    plan = planner.make_plan(info.id, roots, str(model.config.get("arch", "")))
    planner.check_layouts(plan)
    planner.check_model(plan, model)
    planner.check_overrides(plan, args.overrides)
    configs = _configs(plan, args)
    _check_data(plan, configs)
    if not args.dry_run and not any(r.runs for r in plan.runs):
        raise UserError(f"nothing to run: {info.id} reads "
                        + ", ".join(f"--data {n}=ROOT" for n in planner.table_data(info.id))
                        + (f"; {', '.join(sorted(set(planner.DATA_NAMES) - set(roots)))} "
                           "not given" if roots else ""))
    store = Path(args.store) if args.store else results_store_path()
    check_store_target(store)
    out = Path(args.out).expanduser() if args.out else _default_out(info.id, args.model,
                                                                     args.schedule)
    out = out.resolve()
    reference_row(info, args.model, args.against)  # a bad --against is refused up front
    argvs = {r.name: _argv(r, args, out) for r in plan.runs if r.runs}
    if args.dry_run:
        if is_launch_main():  # under torchrun the plan is printed once
            _print_plan(plan, argvs, args, model, configs, out)
        return 0
    del model  # each eval loads its own copy
    device = resolve_device(args.device).type if args.device is None else args.device
    with eval_processes(device):  # torchrun: every eval runs on the N processes
        return _run_plan(plan, args, argvs, store, out)


def _run_plan(plan: planner.Plan, args: argparse.Namespace, argvs: dict[str, list[str]],
              store: Path, out: Path) -> int:
    """Write the plan file, run the evals, print and write the table (rank 0 writes)."""
    state = from_main(lambda: _state(out, args, argvs))
    created = not out.exists()
    if is_writer():
        out.mkdir(parents=True, exist_ok=True)
    write_json(out / PLAN_FILE, state)
    record_process(out, "reproduce", list(getattr(args, "_argv", None) or sys.argv[1:]))
    watch = open_tracker(out, tracking_options(args), config={**state, "versions": versions()},
                         name=out.name)
    try:
        with activated(watch) as tracker:
            def report(number: int, name: str, status: str, done: dict[str, str]) -> None:
                report_run(tracker, number, name, status, len(done), len(argvs),
                           table_values(plan, store, done, args.model, args.against)
                           if status != "started" else {})
            tracker.start_section(SECTION, 1)  # a resumed plan reports every run again
            run_ids = _execute(plan, argvs, out, report,
                               [] if args.tensorboard else ["--no-tb"])
    except KeyboardInterrupt:  # Ctrl-C in an eval (its 130) or between them: stop the plan
        return report_interrupt(getattr(args, "_argv", _own_argv(args)),
                                None if args.out else out, saved=True)
    except UserError:
        # bad input only a protocol could see: if no run was left behind, neither is the plan
        if is_writer() and not args.resume and not any((out / name).exists() for name in argvs):
            (out / PLAN_FILE).unlink(missing_ok=True)
            if created and not any(out.iterdir()):
                out.rmdir()
        raise
    return _finish(plan, args, store, out, run_ids)


def _execute(plan: planner.Plan, argvs: dict[str, list[str]], out: Path,
             report: Callable[[int, str, str, dict[str, str]], None] = lambda *a: None,
             extra: list[str] | None = None) -> dict[str, str]:
    """Run each planned eval not finished before; {run name: run id} of the finished ones.
    `report(number, name, status, finished so far)` feeds the live view; `extra` flags go to
    every eval (not saved in the plan: `--no-tb`)."""
    run_ids: dict[str, str] = {}
    todo = [r for r in plan.runs if r.runs]
    for number, run in enumerate(todo, start=1):
        run_dir = out / run.name
        argv = list(argvs[run.name])
        title = f"[{number}/{len(todo)}] {run.name} ({', '.join(run.columns)})"
        kept = (run_dir / "results.json").is_file()
        if kept:
            print(f"{title}: finished before, kept", file=sys.stderr, flush=True)
        else:
            report(number, run.name, "started", run_ids)
            if (run_dir / "run.json").is_file():
                argv.append("--resume")
            print(f"{title}\n  $ {planner.command_line(argv)}", file=sys.stderr, flush=True)
            eval_args = build_parser("eval").parse_args(argv + list(extra or []))
            with contextlib.redirect_stdout(sys.stderr):  # stdout is for the table
                code = eval_args._run(eval_args)  # a UserError propagates: one error line
            if code == INTERRUPTED:  # the eval printed its own state; the plan stops too
                raise KeyboardInterrupt
        run_ids[run.name] = read_json_state(
            run_dir / "run.json", "run file", keys={"run_id": str},
            hint=f"remove {run_dir} and continue with --resume (that run starts again)")["run_id"]
        report(number, run.name, "kept" if kept else "finished", run_ids)
    return run_ids


def _own_argv(args: argparse.Namespace) -> list[str]:
    """The reproduce command's words when it was not started by `main` (Python callers)."""
    words = ["reproduce", args.table, "--model", args.model]
    for pair in args.data:
        words += ["--data", pair]
    return words + ["--schedule", args.schedule]


def _finish(plan: planner.Plan, args: argparse.Namespace, store: Path, out: Path,
            run_ids: dict[str, str]) -> int:
    """Print the table (terminal) and write table.md / table.tex / table.html (rank 0)."""
    if not current().is_main:
        return 0
    results = ResultsStore(store).results(run_id=list(run_ids.values()))
    rows = plan_results(results, plan, run_ids)
    frame = reproduce_frame(plan, rows, args.model, args.against)
    display = reproduce_display(frame, plan)
    reference = reference_row(plan.table, args.model, args.against)
    notes = [f"{', '.join(r.columns)}: {r.skip}" for r in plan.runs if r.skip]
    if args.schedule != "published":
        notes.append(f"schedule {args.schedule}: not the published protocol length")
    notes.append(f"deltas vs a published number: {NO_DATA}")
    print(f"\n{plan.table.id}: {plan.table.title} ({plan.table.unit})")
    print(terminal_text(display, plan, reference), end="")
    for note in notes:
        print(f"  {note}")
    texts = render_formats(display, plan, args.model, notes)
    for fmt, suffix in (("md", "md"), ("latex", "tex"), ("html", "html")):
        write_text(out / f"table.{suffix}", texts[fmt])
    print(f"tables written to {out}/table.{{md,tex,html}}; rows in {store}", file=sys.stderr)
    return 0
