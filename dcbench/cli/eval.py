"""`dcbench eval`: run one protocol on one model and store long-format result rows."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pandas as pd

from dcbench.cli.config_checks import check_protocol_config
from dcbench.cli.eval_dist import eval_processes, from_main, rank_device
from dcbench.cli.eval_plan import print_plan
from dcbench.cli.parsers.eval import check_args
from dcbench.cli.parsers.watch import tracking_options
from dcbench.cli.resume_hint import report_interrupt
from dcbench.core.config import dump_yaml, load_yaml, to_dict
from dcbench.core.devices import resolve_device
from dcbench.core.distributed import current
from dcbench.core.errors import UserError
from dcbench.core.files import check_output_dir, is_writer, write_json, write_text
from dcbench.core.home import dcbench_home, results_store_path
from dcbench.core.liveness import record_process
from dcbench.core.outcomes import OUTCOMES_FILE, write_outcomes
from dcbench.core.provenance import versions
from dcbench.core.rows import normalize_run
from dcbench.core.trackers import open_tracker, report_rows
from dcbench.core.tracking import activated
from dcbench.data.pipeline import resolve_input_pipeline
from dcbench.leaderboards.identity import check_name, default_name
from dcbench.leaderboards.importing import read_outcome_refs
from dcbench.leaderboards.store import ResultsStore, check_store_target
from dcbench.models.factory import load_model
from dcbench.protocols.base import get_protocol, list_protocols
from dcbench.protocols.plan import quick_schedules

# CLI flag -> config key; a protocol whose Config lacks the key refuses the flag.
FLAG_KEYS = {"layers": "layers", "fast": "fast", "seed": "seed",
             "train_layers": "train_layers", "train_bn_scales": "train_bn_scales",
             "batch_size": "batch_size", "workers": "workers"}


def _list_protocols() -> None:

    for name in list_protocols():
        proto = get_protocol(name)
        print(f"{name:12s} {proto.summary}")
        defaults = {f.name: f.default for f in dataclasses.fields(proto.Config)
                    if f.default is not dataclasses.MISSING}
        print(textwrap.fill("defaults: " + ", ".join(f"{k}={v}" for k, v in defaults.items()),
                            width=100, initial_indent=" " * 13, subsequent_indent=" " * 15))
        for kind, presets in (("dialect", proto.DIALECTS), ("schedule", proto.SCHEDULES)):
            for preset, values in presets.items():
                changes = ", ".join(f"{k}={v}" for k, v in values.items()) or \
                    "(the defaults above)"
                print(f"{'':12s} {kind} {preset}: {changes}")


def _flag_layer(proto: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Config values given by dedicated flags; refused when the protocol has no such key."""
    fields = {f.name for f in dataclasses.fields(proto.Config)}
    layer: dict[str, Any] = {}
    for flag, key in FLAG_KEYS.items():
        value = getattr(args, flag)
        if value is None:
            continue
        if key not in fields:

            raise UserError(f"protocol {proto.name!r} does not take --{flag.replace('_', '-')}; "
                            f"its config keys: {', '.join(sorted(fields))}")
        if key == "layers":
            value = [v.strip() for v in value.split(",") if v.strip()]
            if not value:
                raise UserError(f"--layers {args.layers!r} names no layer; expected e.g. "
                                "conv3,conv4,conv5")
        layer[key] = value
    return layer


def _device(requested: str | None) -> str:
    """The device to run on: the one asked for (checked), else cuda when present, else cpu."""
    resolved = resolve_device(requested)
    return requested or resolved.type


def _run_dir(args: argparse.Namespace, config_dict: dict[str, Any],
             model_sha256: str, legacy: dict[str, Any] | None = None
             ) -> tuple[Path, str, bool]:
    """(run dir, run id, fresh: no established run there, so all its files are written now).

    Refuses to mix runs; --resume needs the same protocol, model weights and config. A run
    marked failed is accepted by the next command with or without --resume: it continues when
    nothing changed, else its files (and only those) are removed and a new run starts.
    `legacy`: config keys added since older run dirs were saved, with the value that
    reproduces them (the Config's `LEGACY_VALUES`), filled into a saved config lacking them.
    """
    if args.resume and not args.out:
        raise UserError("--resume needs the --out run dir of the run to continue")
    if not args.out:
        run_id = _new_run_id(args)
        return dcbench_home() / "runs" / run_id, run_id, True
    out = Path(args.out).expanduser()
    run_file = out / "run.json"
    if run_file.is_file():
        saved = _read_run(run_file)
        failed = saved.get("status") == "failed"
        if not args.resume and not failed:
            raise UserError(f"{out} already holds a run; pass --resume to continue it "
                            "or choose another --out")
        problem = None
        if saved.get("protocol") != args.protocol or saved.get("model") != args.model:
            problem = (f"{out} holds a {saved.get('protocol')} run of {saved.get('model')}; "
                       "--resume needs the same protocol and model")
        elif saved.get("model_sha256") != model_sha256:
            problem = (f"the weights of {args.model} changed since the run in {out} started "
                       f"(sha256 {str(saved.get('model_sha256'))[:12]}..., now "
                       f"{model_sha256[:12]}...); start a new --out for the new weights")
        else:
            problem = _config_problem(out, json.loads(json.dumps(config_dict)), legacy or {})
        if problem is None:
            return out, str(saved["run_id"]), False
        if not failed:
            raise UserError(problem)
        _remove_files(out, saved.get("files", []))  # the failed run's own files, nothing else
        return out, _new_run_id(args), True
    if args.resume:
        raise UserError(f"nothing to resume in {out} (no run.json)")
    if out.exists() and any(out.iterdir()):
        raise UserError(f"--out {out} exists and is not empty; choose a new folder")
    return out, _new_run_id(args), True


def _config_problem(out: Path, now: dict[str, Any], legacy: dict[str, Any]) -> str | None:
    """Why the config saved in `out` cannot be resumed with `now` (None: it can). Keys of
    `legacy` missing from the saved config take their legacy value (an older run dir)."""
    saved = _read_config(out / "config.yaml")
    added = {k: v for k, v in legacy.items() if isinstance(saved, dict) and k not in saved}
    if isinstance(saved, dict) and {**saved, **added} == now:
        return None
    if added and isinstance(saved, dict) and {**now, **added} == {**saved, **added}:
        flags = " ".join(f"--set {k}={v}" for k, v in added.items())
        return (f"{out} was started before the config key(s) {', '.join(added)} existed; "
                f"resume it with {flags}")
    return (f"the resolved config differs from the one saved in {out}/config.yaml"
            "; resume with the same options")


def _new_run_id(args: argparse.Namespace) -> str:
    return f"{args.protocol}-{_dt.datetime.now(_dt.timezone.utc):%Y%m%dT%H%M%S}-" \
           f"{uuid.uuid4().hex[:6]}"


def _read_run(path: Path) -> dict[str, Any]:
    """run.json of an eval run dir (a UserError when it is not one)."""
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        saved = None
    if not isinstance(saved, dict) or "run_id" not in saved:
        raise UserError(f"{path} is not the run.json of a dcbench eval run; choose another "
                        "--out")
    return saved


def _read_config(path: Path) -> Any:
    """The saved config.yaml (None when missing or unreadable: then it differs)."""
    try:
        return load_yaml(path)
    except UserError:
        return None


def _run_files(work_dir: Path) -> list[str]:
    """Every file under the run dir (relative, sorted): what the run wrote into it."""
    return sorted(p.relative_to(work_dir).as_posix() for p in work_dir.rglob("*")
                  if p.is_file() or p.is_symlink())


def _remove_files(work_dir: Path, files: Any) -> None:
    """Remove the listed files (a run's own) and the folders they leave empty."""
    root = work_dir.resolve()
    for name in files if isinstance(files, list) else []:
        path = work_dir / str(name)
        if root not in path.resolve().parents or not (path.is_file() or path.is_symlink()):
            continue  # never anything outside the run dir
        path.unlink()
        for parent in path.parents:
            if parent == work_dir or any(parent.iterdir()):
                break
            parent.rmdir()


def _on_failure(work_dir: Path, fresh: bool, created: bool, user_error: bool,
                before: set[str]) -> None:
    """Leave a run dir the corrected command accepts: bad input found by a fresh run removes
    what it wrote; any other failure is marked in run.json (its files listed), so the next
    command resumes it or, changed, replaces it. `before`: files that were there already
    and are not the run's (never removed). Only the writing rank (rank 0) does any of it."""
    if not is_writer():
        return
    files = [f for f in _run_files(work_dir) if f not in before] if work_dir.is_dir() else []
    if user_error and fresh:
        _remove_files(work_dir, files)
        if created and work_dir.is_dir() and not any(work_dir.iterdir()):
            work_dir.rmdir()
        return
    run_file = work_dir / "run.json"
    record = _read_run(run_file) if run_file.is_file() else {}
    write_json(run_file, {**record, "status": "failed", "files": files})


def _argv(args: argparse.Namespace) -> list[str]:
    """The command-line words of this run (set by the entry point; sys.argv otherwise)."""
    return list(getattr(args, "_argv", None) or sys.argv[1:])


def _stored_default_name(args: argparse.Namespace, sha256: str) -> str:
    """`identity.default_name`, reading the names already stored for these weights."""
    path = Path(args.store) if args.store else results_store_path()
    stored = None
    if not args.no_store and path.is_file() and path.stat().st_size:
        stored = ResultsStore(path).results(model_sha256=sha256)
    return default_name(args.model, sha256, stored)


def print_table(rows: list[Any], file: Any = None) -> None:
    """Rows as a model/split/layer x metric table (per-draw seeds shown when there are several)."""

    if not rows:
        print("(no results)", file=file or sys.stdout)
        return
    frame = pd.DataFrame([r.as_dict() for r in rows])
    index = ["model", "split", "layer"]
    if frame.groupby(index + ["metric"])["seed"].nunique().max() > 1:
        index.append("seed")
    table = frame.pivot_table(index=index, columns="metric", values="value", aggfunc="first",
                              sort=False)
    print(table.to_string(float_format=lambda v: f"{v:.4g}"), file=file or sys.stdout)


def _quick_configs(proto: Any, args: argparse.Namespace, extra: list[dict[str, Any]],
                   config: Any) -> list[tuple[str, Any]]:
    """(flags, resolved config) of the quicker forms of this run, to show with the plan."""
    fields = [f.name for f in dataclasses.fields(proto.Config)]
    out = []
    for flags, layer in quick_schedules(list(proto.SCHEDULES), fields, args.schedule,
                                        bool(getattr(config, "fast", False))):
        schedule = "smoke" if "smoke" in flags else args.schedule
        out.append((flags, proto.resolve_config(
            dialect=args.dialect, schedule=schedule,
            layers=extra + [_flag_layer(proto, args), layer], overrides=args.overrides)))
    return out


def _evaluate(args: argparse.Namespace, proto: Any, config: Any, device: str,
              state: dict[str, Path], quick: list[tuple[str, Any]]
              ) -> tuple[list[Any], str, Path, str, Any] | None:
    """Load the model, make (or reopen) the run dir and run the protocol: (rows, run id, run
    dir, start time, model), or None for --dry-run. `state["work_dir"]` is set as soon as the run
    dir is known."""
    model = load_model(args.model)
    if getattr(config, "layers", None):
        model.check_layers(list(config.layers))
    config_dict = to_dict(config)
    if args.dry_run:
        print_plan(proto, args, config, model, device, quick)
        return None
    model_sha256 = model.weights_sha256()  # hashes every weight: once per run
    # a wrong --out / --resume (or changed weights) is refused before the plan is timed
    created = not Path(args.out).expanduser().exists() if args.out else True
    # under torchrun rank 0 decides (one run id) and every rank gets its answer or its error
    work_dir, run_id, fresh = from_main(lambda: _run_dir(
        args, config_dict, model_sha256, getattr(type(config), "LEGACY_VALUES", None)))
    print_plan(proto, args, config, model, device, quick)
    state["work_dir"] = work_dir
    saved = {} if fresh else _read_run(work_dir / "run.json")
    # the rows' `model`: --name, else the resumed run's, else the stored or card name
    model.name = from_main(lambda: args.name or saved.get("name")
                           or _stored_default_name(args, model_sha256))
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    pipeline = resolve_input_pipeline(config_dict.get("input_pipeline", "cpu"), device,
                                      gpu_path=False)
    print(f"dcbench eval: {proto.name} (dialect {config_dict.get('dialect')}, schedule "
          f"{args.schedule}) on {model.name} ({args.model}) [{model_sha256[:12]}], {device}, "
          f"input pipeline {pipeline}; run dir {work_dir}", file=sys.stderr)
    before = set(_run_files(work_dir)) if fresh and work_dir.is_dir() else set()
    if fresh:
        write_text(work_dir / "config.yaml", dump_yaml(config))
        write_json(work_dir / "versions.json", versions())
    if fresh or _read_run(work_dir / "run.json").get("status") == "failed":
        write_json(work_dir / "run.json", {
            "run_id": run_id, "protocol": proto.name, "model": args.model,
            "model_sha256": model_sha256, "name": model.name,
            "data": str(Path(args.data).resolve()),
            "schedule": args.schedule, "started": started, "argv": _argv(args),
            "input_pipeline": pipeline})
    record_process(work_dir, "eval", _argv(args))  # for `dcbench status`
    try:
        with activated(open_tracker(work_dir, tracking_options(args), name=run_id, config={
                **json.loads(json.dumps(config_dict)), "protocol": proto.name,
                "model": args.model, "versions": versions()})) as tracker:
            rows = proto.run(model, args.data, config, run_id=run_id, device=device,
                             progress=progress, work_dir=work_dir)
            if not rows:  # nothing measured is an error, never a silent success
                raise UserError(f"{proto.name} produced no result rows for this config and "
                                "data")
            report_rows(tracker, rows)
    except Exception as err:
        _on_failure(work_dir, fresh, created, isinstance(err, UserError), before)
        raise
    return rows, run_id, work_dir, started, model


def run(args: argparse.Namespace) -> int:
    """Resolve the config, load the model, run the protocol, save and store the rows."""

    if args.list:
        _list_protocols()
        return 0
    check_args(args)  # also run by the entry point before this module is imported
    proto = get_protocol(args.protocol)
    extra = [load_yaml(args.config)] if args.config else []
    config = proto.resolve_config(dialect=args.dialect, schedule=args.schedule,
                                  layers=extra + [_flag_layer(proto, args)],
                                  overrides=args.overrides)
    check_protocol_config(config, proto.name)
    if args.name is not None:
        check_name(args.name)
    if not Path(args.data).expanduser().exists():
        raise UserError(f"--data {args.data} does not exist")
    if args.out:
        check_output_dir(args.out)
    if not args.no_store:  # found now, not after the whole evaluation
        check_store_target(args.store or results_store_path())
    device = _device(args.device)
    # `dali` without DALI installed: refused before anything is written
    resolve_input_pipeline(getattr(config, "input_pipeline", "cpu"), device, gpu_path=False)
    # what the protocol would refuse from the data's listings (knn's k above the training
    # set, ...): before the plan is printed, the model loaded or the run dir made
    proto.check_data(args.data, config)
    with eval_processes(device) as info:  # torchrun: N processes; else just this one
        return _run_in_processes(args, proto, extra, config, rank_device(device, info))


def _run_in_processes(args: argparse.Namespace, proto: Any, extra: list[dict[str, Any]],
                      config: Any, device: str) -> int:
    """The evaluation on this process (every rank of a torchrun launch runs it; rank 0
    writes the results, the store and the table)."""
    state: dict[str, Path] = {}
    quick = _quick_configs(proto, args, extra, config)
    try:
        done = _evaluate(args, proto, config, device, state, quick)
    except KeyboardInterrupt:
        # the exact command, with the run dir used (auto-chosen when --out was not given)
        work_dir = state.get("work_dir")
        saved = work_dir is not None and (work_dir / "run.json").is_file()
        return report_interrupt(_argv(args), None if args.out else work_dir, saved=saved)
    if done is None:  # --dry-run
        return 0
    rows, run_id, work_dir, started, model = done
    config_dict = to_dict(config)
    finished = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    write_json(work_dir / "results.json", [r.as_dict() for r in rows])
    outcomes = proto.item_outcomes()
    if outcomes:  # per-item outcomes next to results.json: paired intervals between runs
        write_outcomes(work_dir / OUTCOMES_FILE, outcomes)  # rank 0 only (core.files)
    if not args.no_store and current().is_main:

        run_record = normalize_run({
            "run_id": run_id, "kind": f"eval:{proto.name}",
            "config": json.loads(json.dumps(config_dict)), "versions": versions(),
            "device": rows[0].device if rows else device, "started": started,
            "finished": finished,
            "extra": {"model": args.model, "name": model.name,
                      "arch": model.config.get("arch"), "sobel": bool(model.config.get("sobel")),
                      "data": str(Path(args.data).resolve()),
                      "schedule": args.schedule, "run_dir": str(work_dir),
                      "input_pipeline": resolve_input_pipeline(
                          config_dict.get("input_pipeline", "cpu"), device, gpu_path=False)}})
        # the run and its rows land together or not at all
        refs = read_outcome_refs(work_dir, [r.as_dict() for r in rows])
        ResultsStore(args.store).import_records([run_record], rows, refs)
    print_table(rows)
    where = "" if args.no_store else f" and {args.store or 'the results store'}"
    print(f"{len(rows)} result rows written to {work_dir / 'results.json'}{where}",
          file=sys.stderr)
    return 0
