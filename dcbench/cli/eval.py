"""`dcbench eval`: run one protocol on one model and store long-format result rows."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import shutil
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pandas as pd

from dcbench.cli.config_checks import check_protocol_config
from dcbench.core.config import dump_yaml, load_yaml, to_dict
from dcbench.core.devices import resolve_device
from dcbench.core.errors import UserError
from dcbench.core.files import check_output_dir, check_output_file, write_json, write_text
from dcbench.core.home import dcbench_home, results_store_path
from dcbench.core.provenance import versions
from dcbench.core.rows import normalize_run
from dcbench.leaderboards.store import ResultsStore
from dcbench.models.factory import load_model
from dcbench.protocols.base import get_protocol, list_protocols

HELP = "evaluate a model with one protocol (linear-conv, mlp, low-shot, knn, VOC, ...)"
EPILOG = """schedules: published (default: the paper's settings) | smoke (minutes on the built-in
  64-px data: fewer epochs/iterations/draws, smaller batches, no loader workers; see
  `dcbench eval --list` and each protocol's SCHEDULES for exactly what changes)
examples:
  dcbench eval --list
  dcbench eval --protocol linear-conv --model deepcluster-alexnet --data /datasets/imagenet
  dcbench eval --protocol linear-conv --model deepcluster-alexnet --data /datasets/places205 \\
      --dialect goyal2019 --layers conv3,conv4,conv5 --out runs/lin-places
  dcbench eval --protocol linear-conv --model runs/tiny/final --data synth/cls \\
      --schedule smoke --fast
  dcbench eval --protocol knn --model random-alexnet-sobel --data synth/cls --set k=200
  dcbench eval --protocol low-shot --model runs/tiny/final --data synth/cls --schedule smoke \\
      --out runs/lowshot
  dcbench eval --protocol low-shot --model runs/tiny/final --data synth/cls --schedule smoke \\
      --out runs/lowshot --resume          # after an interruption: finished draws are kept
  dcbench eval --protocol voc07-cls --model deepcluster-alexnet --data /datasets/VOCdevkit \\
      --train-layers all
"""

# CLI flag -> config key; a protocol whose Config lacks the key refuses the flag.
FLAG_KEYS = {"layers": "layers", "fast": "fast", "seed": "seed",
             "train_layers": "train_layers", "train_bn_scales": "train_bn_scales",
             "batch_size": "batch_size", "workers": "workers"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `dcbench eval`."""
    parser.add_argument("--protocol", help="protocol name (see --list)")
    parser.add_argument("--model", help="model spec: catalog name, hub dir, checkpoint, "
                                        "hf-hub:, torchvision:, arch:NAME")
    parser.add_argument("--data", help="dataset root (train/ + val/ folders or list files; "
                                       "VOCdevkit for the VOC protocols)")
    parser.add_argument("--dialect", help="named protocol preset (default dc2018)")
    parser.add_argument("--schedule", default="published",
                        help="run-length preset: published (default) or smoke")
    parser.add_argument("--layers", help="comma-separated taps, e.g. conv3,conv4,conv5")
    parser.add_argument("--fast", action="store_true", default=None,
                        help="linear-conv, mlp: train on cached center-crop features "
                             "(knn, knn-graph, nmi read that cache by default)")
    parser.add_argument("--seed", type=int, help="seed for splits, draws, init and order")
    parser.add_argument("--train-layers", dest="train_layers",
                        help="VOC protocols: fc6-8 (frozen convs) or all")
    parser.add_argument("--train-bn-scales", dest="train_bn_scales", action="store_true",
                        default=None, help="VOC protocols: also train BN scales (erratum)")
    parser.add_argument("--batch-size", dest="batch_size", type=int,
                        help="images per batch (the protocol's batch_size; see --list)")
    parser.add_argument("--workers", type=int,
                        help="data loader processes (protocols with a `workers` key)")
    parser.add_argument("--config", help="YAML file of config keys (below --set)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a config key (repeatable)")
    parser.add_argument("--device", help="cpu or cuda[:N] (default: cuda when available)")
    parser.add_argument("--out", help="run dir: config.yaml, versions.json, results.json, "
                                      "checkpoints (default: $DCBENCH_HOME/runs/RUN_ID)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its checkpoints")
    parser.add_argument("--store", help="SQLite results store "
                                        "(default: $DCBENCH_HOME/results.sqlite)")
    parser.add_argument("--no-store", action="store_true",
                        help="do not write to the results store")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bars (default: when stderr is a terminal)")
    parser.add_argument("--list", action="store_true", help="list protocols and exit")


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


def _run_dir(args: argparse.Namespace, config_dict: dict[str, Any]) -> tuple[Path, str, bool]:
    """(run dir, run id, created now). Refuses to mix runs; --resume needs a matching config."""


    if args.resume and not args.out:
        raise UserError("--resume needs the --out run dir of the run to continue")
    if not args.out:
        run_id = f"{args.protocol}-{_dt.datetime.now(_dt.timezone.utc):%Y%m%dT%H%M%S}-" \
                 f"{uuid.uuid4().hex[:6]}"
        return dcbench_home() / "runs" / run_id, run_id, True
    out = Path(args.out).expanduser()
    run_file = out / "run.json"
    if run_file.is_file():
        if not args.resume:
            raise UserError(f"{out} already holds a run; pass --resume to continue it "
                            "or choose another --out")
        saved = json.loads(run_file.read_text())
        if saved.get("protocol") != args.protocol or saved.get("model") != args.model:
            raise UserError(f"{out} holds a {saved.get('protocol')} run of "
                            f"{saved.get('model')}; --resume needs the same protocol and model")
        if load_yaml(out / "config.yaml") != json.loads(json.dumps(config_dict)):
            raise UserError(f"the resolved config differs from the one saved in {out}/config.yaml"
                            "; resume with the same options")
        return out, str(saved["run_id"]), False
    if args.resume:
        raise UserError(f"nothing to resume in {out} (no run.json)")
    if out.exists() and any(out.iterdir()):
        raise UserError(f"--out {out} exists and is not empty; choose a new folder")
    run_id = f"{args.protocol}-{_dt.datetime.now(_dt.timezone.utc):%Y%m%dT%H%M%S}-" \
             f"{uuid.uuid4().hex[:6]}"
    return out, run_id, not out.exists()


def _check_store(path: Path) -> None:
    """The results store must be writable and, when it exists, an SQLite file."""
    check_output_file(path, "--store")
    if path.is_file() and path.stat().st_size:
        with open(path, "rb") as handle:
            if handle.read(16) != b"SQLite format 3\x00":
                raise UserError(f"--store {path} is not an SQLite results store; choose "
                                "another file")


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


def run(args: argparse.Namespace) -> int:
    """Resolve the config, load the model, run the protocol, save and store the rows."""

    if args.list:
        _list_protocols()
        return 0
    missing = [f"--{n}" for n in ("protocol", "model", "data") if not getattr(args, n)]
    if missing:
        raise UserError(f"dcbench eval needs {', '.join(missing)} (see dcbench eval --help)")


    proto = get_protocol(args.protocol)
    extra = [load_yaml(args.config)] if args.config else []
    config = proto.resolve_config(dialect=args.dialect, schedule=args.schedule,
                                  layers=extra + [_flag_layer(proto, args)],
                                  overrides=args.overrides)
    check_protocol_config(config, proto.name)
    if not Path(args.data).expanduser().exists():
        raise UserError(f"--data {args.data} does not exist")
    if args.out:
        check_output_dir(args.out)
    if not args.no_store:  # found now, not after the whole evaluation
        _check_store(Path(args.store) if args.store else results_store_path())
    device = _device(args.device)
    model = load_model(args.model)
    if getattr(config, "layers", None):
        model.check_layers(list(config.layers))
    config_dict = to_dict(config)
    model_sha256 = model.weights_sha256()  # hashes every weight: once per run
    work_dir, run_id, created = _run_dir(args, config_dict)
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    print(f"dcbench eval: {proto.name} (dialect {config_dict.get('dialect')}, schedule "
          f"{args.schedule}) on {args.model} [{model_sha256[:12]}], {device}; "
          f"run dir {work_dir}", file=sys.stderr)
    if created or not (work_dir / "run.json").is_file():
        write_text(work_dir / "config.yaml", dump_yaml(config))
        write_json(work_dir / "versions.json", versions())
        write_json(work_dir / "run.json", {
            "run_id": run_id, "protocol": proto.name, "model": args.model,
            "model_sha256": model_sha256, "data": str(Path(args.data).resolve()),
            "schedule": args.schedule, "started": started, "argv": sys.argv[1:]})
    try:
        rows = proto.run(model, args.data, config, run_id=run_id, device=device,
                         progress=progress, work_dir=work_dir)
        if not rows:  # nothing measured is an error, never a silent success
            raise UserError(f"{proto.name} produced no result rows for this config and data")
    except UserError:
        # Bad input found by the protocol itself: leave no half-made run behind.
        if created:
            shutil.rmtree(work_dir, ignore_errors=True)
        elif not args.resume:
            for name in ("run.json", "config.yaml", "versions.json"):
                (work_dir / name).unlink(missing_ok=True)
        raise
    finished = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    write_json(work_dir / "results.json", [r.as_dict() for r in rows])
    if not args.no_store:

        run_record = normalize_run({
            "run_id": run_id, "kind": f"eval:{proto.name}",
            "config": json.loads(json.dumps(config_dict)), "versions": versions(),
            "device": rows[0].device if rows else device, "started": started,
            "finished": finished,
            "extra": {"model": args.model, "data": str(Path(args.data).resolve()),
                      "schedule": args.schedule, "run_dir": str(work_dir)}})
        # the run and its rows land together or not at all
        ResultsStore(args.store).import_records([run_record], rows)
    print_table(rows)
    where = "" if args.no_store else f" and {args.store or 'the results store'}"
    print(f"{len(rows)} result rows written to {work_dir / 'results.json'}{where}",
          file=sys.stderr)
    return 0
