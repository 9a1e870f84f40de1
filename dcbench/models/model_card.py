"""Model cards (README.md with YAML front matter): the one card renderer.

The front matter carries `library_name: dcbench`, tags, license, training datasets and a
`model-index` with one entry per evaluated cell (built with huggingface_hub's
`ModelCardData`/`EvalResult`, fully offline: `card.validate()` would call the Hub and is
never used). The body has readable sections: architecture, Sobel input, training recipe,
data, provenance and results. Training runs and hub pulls render cards with no results;
`dcbench.leaderboards.cards` fills them from the results store.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from dcbench.core.errors import UserError

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


NO_RESULTS = "No results in the store for this model yet (`dcbench eval ...` adds them)."


def hub_license(text: str | None) -> str:
    """A Hub license id from free text: 'CC BY-NC 4.0' -> 'cc-by-nc-4.0'; unknown -> 'other'."""
    if not text:
        return "other"
    return "-".join(str(text).lower().replace("-", " ").split())


def _eval_results(name: str, summary: pd.DataFrame) -> list:
    from huggingface_hub import EvalResult  # lazy: slow to import; only for Hub calls and cards

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


def render_model_card(config: dict, *, name: str, provenance: dict, training: dict | None,
                      summary: pd.DataFrame | None = None, results_text: str | None = None,
                      ) -> str:
    """A model card (README.md text) for one model from already-summarised results.

    `config` is the backbone config (arch, sobel, num_classes, mean, std, input_size,
    taps); `provenance` holds e.g. weights_sha256, source, license, dcbench_version,
    code_revision, versions; `training` is the resolved training recipe (or None for a
    converted checkpoint). `summary` has one row per evaluated cell (protocol, dialect,
    dataset, split, layer, metric, mean, std, n) and feeds the `model-index`;
    `results_text` is the Markdown shown under "Results" (the leaderboards render it).
    """
    from huggingface_hub import (  # lazy: slow to import; only for Hub calls and cards
        ModelCard,
        ModelCardData,
    )

    if not isinstance(config, dict) or "arch" not in config:
        raise UserError("model config must be a mapping with at least 'arch'")
    summary = summary if summary is not None else pd.DataFrame()
    results_text = results_text or NO_RESULTS
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
        eval_results=(_eval_results(name, summary) if not summary.empty else None) or None,
    )
    body = _body(name, config, provenance, training, results_text)
    return str(ModelCard.from_template(data, template_str=_TEMPLATE, body=body))




def _body(name: str, config: dict, provenance: dict, training: dict,
          results_text: str) -> str:
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
        "## Results", results_text,
        "## Usage",
        f"```python\nimport dcbench\n\nmodel = dcbench.load_model({usage_name!r})\n"
        "feats = model.forward_features(images, ['conv3', 'conv5'])\n```",
    ]
    return "\n\n".join(sections) + "\n"
