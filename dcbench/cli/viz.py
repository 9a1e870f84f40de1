"""`dcbench viz`: the thesis's visualisations (Section 5.3) as PNG files.

Verbs: `filters` (first-layer filters, Sobel-composed), `neighbors` (k-NN queries, trained vs
random side by side), `activations` (top images per channel), `gradient-ascent` (an input
optimised to fire a channel) and `curves` (NMI, losses and cluster statistics of a run).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dcbench.core.errors import UserError
from dcbench.core.files import check_output_file, write_bytes
from dcbench.models.factory import load_model
from dcbench.viz.activations import activations_image, check_channels, find_top_activations
from dcbench.viz.ascent import AscentConfig, ascent_figure
from dcbench.viz.curves import curves_figure, figure_png, read_curves, run_label
from dcbench.viz.filters import effective_filters, filter_grid, filters_title
from dcbench.viz.grid import save_png, short_name, with_header, with_title
from dcbench.viz.neighbors import find_neighbors, neighbors_image

MAX_LIST_INDEX = 1_000_000  # above any layer width or viz dataset: a typo, not a request


def parse_channels(text: str, what: str = "channel") -> list[int]:
    """`0,3,5-7` -> [0, 3, 5, 6, 7] (order kept, duplicates dropped); `what` names the list
    in errors (channel, query index). Numbers are in [0, MAX_LIST_INDEX]."""
    out: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = (int(v) for v in part.split("-", 1))
                if not 0 <= lo <= hi <= MAX_LIST_INDEX:
                    raise ValueError
                out.extend(range(lo, hi + 1))
            elif part:
                out.append(int(part))
                if not 0 <= out[-1] <= MAX_LIST_INDEX:
                    raise ValueError
    except ValueError:
        raise UserError(f"bad {what} list {text!r}; expected numbers in [0, {MAX_LIST_INDEX}] "
                        "and ranges low-high, e.g. 0,3,5-7") from None
    if not out:
        raise UserError(f"no {what} chosen; expected e.g. 0,3,5-7")
    return list(dict.fromkeys(out))


def _check_out(path: Path) -> None:
    if path.suffix.lower() != ".png":
        raise UserError(f"--out must end in .png, got {path}")
    if path.is_dir():
        raise UserError(f"--out is a folder: {path}")
    check_output_file(path, "--out")


def _load(spec: str, device: str = "cpu"):

    return load_model(spec).to(device)


def _run_filters(args: argparse.Namespace) -> int:

    model = _load(args.model)
    filters = effective_filters(model)
    image = filter_grid(filters, ncols=args.columns, scale=args.scale)
    title = filters_title(args.model, filters, getattr(model, "sobel", None) is not None)
    image = with_title(image, title)
    _save(image, args.out, title[1])
    return 0


def _run_neighbors(args: argparse.Namespace) -> int:

    models = [_load(args.model, args.device)]
    if args.compare:
        models.append(_load(args.compare, args.device))
    query_indices = parse_channels(args.query_indices, "query index") \
        if args.query_indices else None
    result = find_neighbors(models, args.data, layer=args.layer, k=args.k,
                            n_queries=args.queries, query_indices=query_indices, grid=args.grid,
                            max_images=args.max_images, batch_size=args.batch_size,
                            device=args.device, pipeline=args.input_pipeline)
    _read_by(result.pipeline, args)
    for panel in result.panels:
        if panel.same_class is not None:
            print(f"{panel.name} {args.layer}: {panel.same_class:.1%} of the {args.k}-NN share "
                  f"the query's class ({len(result.queries)} queries)")
    _skipped(result.skipped)
    _save(neighbors_image(result, models[0], args.data, scale=args.scale), args.out,
          f"{len(result.queries)} queries x {args.k} neighbours")
    return 0


def _run_activations(args: argparse.Namespace) -> int:

    model = _load(args.model, args.device)
    channels = parse_channels(args.channels) if args.channels else None
    result = find_top_activations(model, args.data, args.layer, channels, top=args.top,
                                  max_images=args.max_images, batch_size=args.batch_size,
                                  device=args.device, pipeline=args.input_pipeline)
    _read_by(result.pipeline, args)
    _skipped(result.skipped)
    _save(activations_image(result, model, args.data, scale=args.scale), args.out,
          f"top {args.top} images for {len(result.channels)} channels of {args.layer}")
    return 0


def _run_ascent(args: argparse.Namespace) -> int:

    config = AscentConfig(iters=args.iters, lr=args.lr, weight_decay=args.wd, sigma=args.sigma,
                          blur_every=args.blur_every, objective=args.objective,
                          noise_std=args.noise_std, size=args.size, seed=args.seed)
    config.validate()
    channels = parse_channels(args.channels)
    model = _load(args.model, args.device)
    model.check_layers([args.layer])  # the layer and every channel, before any step runs
    check_channels(channels, model.tap_channels(args.layer), args.layer)
    if args.scale is None:
        args.scale = max(1, math.ceil(128 / int(config.size or model.config["input_size"])))
    total = len(channels) * config.iters
    print(f"gradient ascent: {len(channels)} channels of {args.layer} x {config.iters} steps",
          file=sys.stderr, flush=True)
    with tqdm(total=total, desc=f"gradient ascent {args.layer}", unit="step",
              disable=not (args.progress if args.progress is not None else sys.stderr.isatty()),
              file=sys.stderr, dynamic_ncols=True) as bar:
        image, results = ascent_figure(model, args.layer, channels, config,
                                       columns=args.columns, scale=args.scale,
                                       progress=bar.update)
    for r in results:
        print(f"{args.layer} channel {r.channel}: mean activation {r.start_activation:.4g} "
              f"on noise -> {r.final_activation:.4g}")
    image = _label_ascent(image, results, args, config)
    _save(image, args.out, f"{len(results)} channels of {args.layer}")
    return 0


def _label_ascent(image, results, args: argparse.Namespace, config: AscentConfig):
    """Channel numbers (and final activations) over each tile, and a title naming the run."""
    tile = int(results[0].image.shape[-1]) * args.scale
    gap = 2 * args.scale
    ncols = args.columns or len(results)
    labelled = []
    for row in range(0, len(results), ncols):
        height = tile + (gap if row + ncols < len(results) else 0)
        part = image[(row // ncols) * (tile + gap):(row // ncols) * (tile + gap) + height]
        texts = [(i * (tile + gap), f"ch {r.channel}: {r.final_activation:.3g}")
                 for i, r in enumerate(results[row:row + ncols])]
        labelled.append(with_header(part, texts, height=14))
    body = np.concatenate(labelled, axis=0)
    return with_title(body, [
        f"gradient ascent: {short_name(args.model)}, layer {args.layer}",
        f"{config.iters} steps, objective {config.objective}, lr {config.lr}, blur sigma "
        f"{config.sigma} every {config.blur_every}; label = final mean activation"])


def _run_curves(args: argparse.Namespace) -> int:

    _check_out(args.out)
    frames = {}
    for run in args.runs:
        label = run_label(run)
        while label in frames:
            label += "'"
        frames[label] = read_curves(run)
    png = figure_png(curves_figure(frames, columns=args.columns))
    write_bytes(args.out, png)
    epochs = ", ".join(f"{name}: {len(f)} epochs" for name, f in frames.items())
    print(f"wrote {args.out} ({epochs})")
    return 0


def _read_by(pipeline: str, args: argparse.Namespace) -> None:
    """One stderr line naming the input pipeline that read the images (and the request)."""
    what = {"dali": "DALI", "cpu": "PIL"}.get(pipeline, pipeline)
    print(f"input pipeline {pipeline} ({what}; requested {args.input_pipeline}, device "
          f"{args.device})", file=sys.stderr)


def _skipped(count: int) -> None:
    if count:
        print(f"skipped {count} undecodable image(s)", file=sys.stderr)


def _save(image, out: Path, what: str) -> None:

    save_png(image, out)
    print(f"wrote {out} ({what}, {image.shape[1]}x{image.shape[0]} px)")


RUNNERS = {
    "filters": _run_filters,
    "neighbors": _run_neighbors,
    "neighbours": _run_neighbors,
    "activations": _run_activations,
    "gradient-ascent": _run_ascent,
    "curves": _run_curves,
}


def run(args: argparse.Namespace) -> int:
    """Dispatch to the chosen verb; the output path is checked before any work."""
    _check_out(args.out)
    return RUNNERS[args.viz_command](args)
