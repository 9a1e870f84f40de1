"""Model cards (README.md with YAML front matter) generated from the results store.

The front matter carries `library_name: dcbench`, tags, license, training datasets and a
`model-index` with one entry per evaluated cell (built with huggingface_hub's
`ModelCardData`/`EvalResult`, fully offline: `card.validate()` would call the Hub and is
never used). The body has readable sections: architecture, Sobel input, training recipe,
data, provenance and a results table.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from dcbench.errors import UserError

TASK_TYPES = {
    "voc07-det": "object-detection",
    "voc12-seg": "image-segmentation",
    "nmi": "image-feature-extraction",
    "knn-graph": "image-feature-extraction",
    "retrieval": "image-feature-extraction",
}
DATASET_NAMES = {
    "imagenet": "ImageNet", "places205": "Places205", "voc2007": "PASCAL VOC 2007",
    "voc2012": "PASCAL VOC 2012", "oxford5k": "Oxford5k", "paris6k": "Paris6k",
}
_TEMPLATE = "---\n{{ card_data }}\n---\n\n{{ body }}"


def _rows_frame(eval_rows: list[dict] | pd.DataFrame) -> pd.DataFrame:
    from dcbench.leaderboards.rows import RESULT_FIELDS, normalize_row

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


def hub_license(text: str | None) -> str:
    """A Hub license id from free text: 'CC BY-NC 4.0' -> 'cc-by-nc-4.0'; unknown -> 'other'."""
    if not text:
        return "other"
    return "-".join(str(text).lower().replace("-", " ").split())


def _eval_results(name: str, summary: pd.DataFrame) -> list:
    from huggingface_hub import EvalResult

    out = []
    for row in summary.itertuples(index=False):
        out.append(EvalResult(
            task_type=TASK_TYPES.get(row.protocol, "image-classification"),
            task_name=f"{row.protocol} ({row.dialect})",
            dataset_type=row.dataset,
            dataset_name=DATASET_NAMES.get(row.dataset, row.dataset),
            dataset_split=row.split or None,
            metric_type=row.metric,
            metric_name=f"{row.metric} {row.layer}".strip(),
            metric_config=row.layer or None,
            metric_value=round(float(row.mean), 4),
        ))
    return out


def _kv_table(pairs: dict[str, Any]) -> str:
    lines = ["| key | value |", "|---|---|"]
    for key, value in pairs.items():
        text = json.dumps(value) if isinstance(value, list | dict) else str(value)
        lines.append(f"| {key} | {text.replace('|', '/')} |")
    return "\n".join(lines)


def _flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _results_markdown(summary: pd.DataFrame) -> str:
    from dcbench.leaderboards.export import format_number, to_markdown

    if summary.empty:
        return "No results in the store for this model yet (`dcbench eval ...` adds them)."
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

    `config` is the backbone config (arch, sobel, num_classes, mean, std, input_size,
    taps); `provenance` holds e.g. weights_sha256, source, license, dcbench_version,
    code_revision, versions; `training` is the resolved training recipe (or None for a
    converted checkpoint). `eval_rows` are result rows of this model (Result fields).
    """
    from huggingface_hub import ModelCard, ModelCardData

    from dcbench.leaderboards.tables import summarize

    if not isinstance(config, dict) or "arch" not in config:
        raise UserError("model config must be a mapping with at least 'arch'")
    summary = summarize(_rows_frame(eval_rows))
    arch, sobel = str(config["arch"]), bool(config.get("sobel", False))
    training = training or {}
    datasets = training.get("datasets") or ([training["dataset"]] if training.get("dataset")
                                            else [])
    tags = ["dcbench", "deepcluster", "self-supervised", "image-feature-extraction", arch,
            "sobel" if sobel else "rgb"]
    data = ModelCardData(
        library_name="dcbench", license=hub_license(provenance.get("license")), tags=tags,
        datasets=[str(d) for d in datasets if " " not in str(d)] or None, model_name=name,
        pipeline_tag="image-feature-extraction",
        eval_results=_eval_results(name, summary) or None,
    )
    body = _body(name, config, provenance, training, summary)
    return str(ModelCard.from_template(data, template_str=_TEMPLATE, body=body))


def _body(name: str, config: dict, provenance: dict, training: dict,
          summary: pd.DataFrame) -> str:
    sobel = bool(config.get("sobel", False))
    arch_keys = ("arch", "sobel", "num_classes", "input_size", "mean", "std", "taps")
    sobel_text = (
        "The network sees a fixed (frozen) Sobel layer: the image is converted to grayscale "
        "and filtered by horizontal and vertical Sobel kernels, so the first convolution "
        "takes 2 channels. This removes colour, which k-means would otherwise cluster on "
        "(thesis §4, ECCV §3.4)." if sobel else
        "The network takes raw RGB input (3 channels, no Sobel layer). Without Sobel "
        "filtering DeepCluster tends to cluster by colour; compare with a Sobel model.")
    recipe = {k: v for k, v in _flatten(training).items()
              if k not in ("data", "dataset", "datasets")}
    data_lines = [f"- {k}: `{training[k]}`" for k in ("data", "dataset", "datasets")
                  if training.get(k)]
    usage_name = provenance.get("source") or name
    sections = [
        f"# {name}",
        f"Backbone `{config['arch']}` with {'Sobel' if sobel else 'RGB'} input, for "
        "clustering-based self-supervised feature learning (DeepCluster, Caron et al. 2018), "
        "packaged by dcbench.",
        "## Architecture",
        _kv_table({k: config[k] for k in arch_keys if k in config}),
        "## Sobel", sobel_text,
        "## Training recipe",
        _kv_table(recipe) if recipe else "Not recorded (converted or third-party checkpoint).",
        "## Data",
        "\n".join(data_lines) if data_lines else "Training data not recorded.",
        "## Provenance",
        _kv_table(_flatten(provenance)) if provenance else "Not recorded.",
        "## Results", _results_markdown(summary),
        "## Usage",
        f"```python\nimport dcbench\n\nmodel = dcbench.load_model({usage_name!r})\n"
        "feats = model.forward_features(images, ['conv3', 'conv5'])\n```",
    ]
    return "\n\n".join(sections) + "\n"


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
        from dcbench.leaderboards.report import read_log

        curves = read_log(run_dir)
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
    from dcbench.hub import catalog

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
    import dcbench
    from dcbench.provenance import code_revision

    dirs = _hub_and_run_dirs(spec_or_run_dir)
    provenance: dict[str, Any] = {}
    if dirs is None:  # catalog name, checkpoint file, hf-hub:, ...
        spec = str(spec_or_run_dir)
        backbone = dcbench.load_model(spec)
        config, sha, name, run_dir = dict(backbone.config), backbone.weights_sha256(), spec, None
    else:
        hub_dir, run_dir = dirs
        config = _read_yaml_or_json(hub_dir / "config.json")
        sha = config.pop("weights_sha256", None) or dcbench.load_model(
            str(hub_dir)).weights_sha256()
        name = str(config.pop("name", "") or (run_dir or hub_dir).name)
        for key in ("license", "source_url", "source_sha256"):
            if config.get(key):
                provenance[key] = config.pop(key)
        spec = str(spec_or_run_dir)
    catalog_provenance, training = _catalog_facts(name)
    provenance = {**catalog_provenance, **provenance, "weights_sha256": sha,
                  "source": name if catalog_provenance else spec,
                  "dcbench_version": dcbench.__version__, "code_revision": code_revision()}
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
    from dcbench.files import write_text
    from dcbench.leaderboards.store import ResultsStore

    dirs = _hub_and_run_dirs(target_dir)
    if dirs is None:
        raise UserError(f"{target_dir} is not a folder; expected a hub folder or a run dir")
    text = card_for(target_dir, ResultsStore(store_path))
    out = dirs[0] / "README.md"
    write_text(out, text)
    return out
