"""Model cards filled from the results store (`dcbench hub card`, `leaderboard`).

`card_for` finds a model's rows in the store (by weights sha256 or name), summarises them
and renders the card with `dcbench.models.model_card.render_model_card`, the one renderer
that training runs and hub pulls use too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from dcbench.core.errors import UserError
from dcbench.core.files import write_text
from dcbench.core.provenance import code_revision
from dcbench.core.rows import RESULT_FIELDS, normalize_row
from dcbench.core.version import __version__
from dcbench.leaderboards.export import format_number, to_markdown
from dcbench.leaderboards.store import ResultsStore
from dcbench.leaderboards.tables import summarize
from dcbench.models.factory import load_model
from dcbench.models.model_card import NO_RESULTS, render_model_card
from dcbench.models.sources import catalog
from dcbench.viz.curves import parse_log


def _rows_frame(eval_rows: list[dict] | pd.DataFrame) -> pd.DataFrame:

    if isinstance(eval_rows, pd.DataFrame):
        records = eval_rows.to_dict("records")
    else:
        records = list(eval_rows)
    rows = []
    for i, record in enumerate(records):
        record = {k: (None if k == "seed" and pd.isna(v) else v) for k, v in record.items()
                  if k in RESULT_FIELDS}
        if record.get("seed") is not None:
            record["seed"] = int(record["seed"])
        rows.append(normalize_row(record, where=f"eval row {i}"))
    return pd.DataFrame(rows, columns=list(RESULT_FIELDS))


def _results_markdown(summary: pd.DataFrame) -> str:

    if summary.empty:
        return NO_RESULTS
    display = summary[["protocol", "dialect", "dataset", "split", "layer", "metric"]].copy()
    display["value"] = [format_number(m) + (f" ± {format_number(s)}" if not pd.isna(s) else "")
                        for m, s in zip(summary["mean"], summary["std"], strict=True)]
    display["seeds/runs"] = summary["n"].astype(str).to_numpy()
    return to_markdown(display).rstrip("\n") + (
        "\n\nMean ± sample std over seeds; only the latest configuration of each protocol "
        "is shown.")


def build_model_card(config: dict, *, name: str, provenance: dict,
                     eval_rows: list[dict] | pd.DataFrame,
                     training: dict | None) -> str:
    """A model card (README.md text) for one model, results from `eval_rows`.

    `eval_rows` are result rows of this model (Result fields); they are summarised
    (mean +- std over seeds, latest configuration) and rendered by `render_model_card`.
    """
    summary = summarize(_rows_frame(eval_rows))
    return render_model_card(config, name=name, provenance=provenance, training=training,
                             summary=summary, results_text=_results_markdown(summary))


def _read_yaml_or_json(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as err:
        raise UserError(f"{path}: cannot parse ({err})") from err
    return data if isinstance(data, dict) else {}


def _training_summary(run_dir: Path) -> dict:
    """The resolved training config of a run plus where its curves ended."""
    config_path = run_dir / "config.yaml"
    training = _read_yaml_or_json(config_path) if config_path.is_file() else {}
    if (run_dir / "log.jsonl").is_file():

        curves = parse_log((run_dir / "log.jsonl").read_text(encoding="utf-8", errors="replace"))
        if not curves.empty:
            last = curves.iloc[-1].dropna().to_dict()
            training["epochs_completed"] = int(last.get("epoch", len(curves) - 1)) + 1
            for key in ("nmi_prev", "nmi_labels", "clustering_loss", "train_loss"):
                if key in last:
                    training[f"final_{key}"] = round(float(last[key]), 4)
    return training


def _hub_and_run_dirs(target: str | os.PathLike) -> tuple[Path, Path | None] | None:
    """(hub dir, training run dir or None) for a folder target; None for a non-folder spec."""
    path = Path(target)
    if not path.is_dir():
        return None
    for hub in (path, path / "final", path / "checkpoints" / "latest"):
        if (hub / "config.json").is_file() and (hub / "model.safetensors").is_file():
            run_dir = next((d for d in (hub.parent, hub.parent.parent)
                            if (d / "log.jsonl").is_file() or (d / "config.yaml").is_file()),
                           None)
            return hub, run_dir
    raise UserError(f"{path} is neither a hub folder nor a training run directory",
                    detail="  expected config.json + model.safetensors in it, in final/, "
                           "or in checkpoints/latest/")


def _catalog_facts(name: str) -> tuple[dict, dict]:
    """(provenance, training) known from the hub catalog for a catalog model name."""

    if not catalog.has_entry(name):
        return {}, {}
    entry = catalog.get_entry(name).as_dict()
    provenance = {k: entry[k] for k in ("description", "paper", "license", "url", "notes")
                  if entry.get(k) not in (None, "")}
    training = {k: entry[k] for k in ("dataset", "clustering", "k", "lr", "wd", "epochs")
                if entry.get(k) not in (None, "")}
    return provenance, training


def card_for(spec_or_run_dir: str | os.PathLike, store: Any) -> str:
    """The card of a catalog model, hub folder or training run dir, results from `store`.

    Results are the stored rows whose model_sha256 is the weights' sha256, or whose model
    name is the model's name (or the spec given).
    """

    dirs = _hub_and_run_dirs(spec_or_run_dir)
    provenance: dict[str, Any] = {}
    if dirs is None:  # catalog name, checkpoint file, hf-hub:, ...
        spec = str(spec_or_run_dir)
        backbone = load_model(spec)
        config, sha, name, run_dir = dict(backbone.config), backbone.weights_sha256(), spec, None
    else:
        hub_dir, run_dir = dirs
        config = _read_yaml_or_json(hub_dir / "config.json")
        sha = config.pop("weights_sha256", None) or load_model(
            str(hub_dir)).weights_sha256()
        name = str(config.pop("name", "") or (run_dir or hub_dir).name)
        for key in ("license", "source_url", "source_sha256"):
            if config.get(key):
                provenance[key] = config.pop(key)
        spec = str(spec_or_run_dir)
    catalog_provenance, training = _catalog_facts(name)
    provenance = {**catalog_provenance, **provenance, "weights_sha256": sha,
                  "source": name if catalog_provenance else spec,
                  "dcbench_version": __version__, "code_revision": code_revision()}
    if run_dir is not None:
        training = {**training, **_training_summary(run_dir)}
        if (run_dir / "versions.json").is_file():
            provenance["versions"] = _read_yaml_or_json(run_dir / "versions.json")
    key = ["run_id", "model", "model_sha256", "protocol", "dialect", "dataset", "split",
           "layer", "metric", "seed"]
    rows = pd.concat([store.results(model_sha256=sha), store.results(model=[name, spec])])
    rows = rows.drop_duplicates(subset=key)
    return build_model_card(config, name=name, provenance=provenance, eval_rows=rows,
                            training=training or None)


def write_card(target_dir: str | os.PathLike, store_path: str | os.PathLike | None = None,
               ) -> Path:
    """Write README.md (atomically) into a hub folder (or a run dir's final/); returns its path."""

    dirs = _hub_and_run_dirs(target_dir)
    if dirs is None:
        raise UserError(f"{target_dir} is not a folder; expected a hub folder or a run dir")
    text = card_for(target_dir, ResultsStore(store_path))
    out = dirs[0] / "README.md"
    write_text(out, text)
    return out
