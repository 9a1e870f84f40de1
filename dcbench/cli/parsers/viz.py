"""Arguments of `dcbench viz` (light: no torch, pandas or matplotlib, so `--help` and
argument errors answer before torch is imported; the runner is `dcbench.cli.viz`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dcbench.cli.arg_types import float_in, seed
from dcbench.viz.ascent_config import OBJECTIVES, AscentConfig

HELP = "visualisations as PNG: filters, neighbours, top activations, gradient ascent, curves"
EPILOG = """examples:
  dcbench data synth --out synth --kind cls
  dcbench viz filters --model random-alexnet_small-sobel --out filters.png
  dcbench viz filters --model runs/tiny/final --scale 8 --out tiny-filters.png
  dcbench viz neighbors --model runs/tiny/final --compare random-alexnet_small-sobel \\
      --data synth/cls/val --layer conv5 --k 3 --queries 8 --out neighbors.png
  dcbench viz activations --model runs/tiny/final --data synth/cls/train --layer conv3 \\
      --channels 0-7 --top 9 --out top9.png
  dcbench viz gradient-ascent --model runs/tiny/final --layer conv3 --channels 0-5 \\
      --seed 0 --scale 2 --out ascent.png
  dcbench viz gradient-ascent --model deepcluster-alexnet --layer conv5 --channels 0,1 \\
      --iters 1000 --lr 0.1 --out alexnet-conv5.png
  dcbench viz curves runs/tiny runs/tiny-rgb --out curves.png
"""


VERBS = ("filters", "neighbors", "activations", "gradient-ascent", "curves")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _out(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, type=Path, help="PNG file to write")


def _model(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True,
                        help="catalog name, hub folder, run's final/ folder, checkpoint, arch:NAME")


def _data(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, type=Path,
                        help="image folder (class sub-folders, or a flat folder of images)")
    parser.add_argument("--max-images", type=_positive, default=None,
                        help="use N evenly spaced images of the folder (default: all)")
    parser.add_argument("--batch-size", type=_positive, default=64)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--input-pipeline", choices=("auto", "cpu", "dali"), default="auto",
                        help="who decodes the images: auto (DALI on CUDA when installed, else "
                             "PIL), cpu (PIL) or dali")


def _scale(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument("--scale", type=_positive, default=None,
                        help=f"enlarge every pixel N x N (default: {default})")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the five verbs."""
    sub = parser.add_subparsers(dest="viz_command", metavar="{" + ",".join(VERBS) + "}")
    sub.required = True

    def verb(name: str, help_text: str, aliases: tuple[str, ...] = ()) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text, epilog=EPILOG,
                              aliases=list(aliases),
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    p = verb("filters", "first-layer filters (Sobel models: composed with the Sobel front-end)")
    _model(p)
    p.add_argument("--columns", type=_positive, default=None, help="default: ceil(sqrt(C))")
    _scale(p, "at least 4, and a grid at least 480 px wide")
    _out(p)

    p = verb("neighbors", "query images and their k nearest neighbours in a layer's features "
             "(alias: neighbours)", aliases=("neighbours",))
    _model(p)
    p.add_argument("--compare", default=None,
                   help="second model shown to the right, e.g. random-alexnet_small-sobel")
    _data(p)
    p.add_argument("--layer", default="conv5", help="tap (default conv5)")
    p.add_argument("--k", type=_positive, default=3, help="neighbours per query (thesis: 3)")
    p.add_argument("--queries", type=_positive, default=6, help="evenly spaced query images")
    p.add_argument("--query-indices", default=None, help="explicit dataset indices, e.g. 0,40")
    p.add_argument("--grid", type=_positive, default=1,
                   help="average-pool conv maps to GRID x GRID before L2 (default 1: global)")
    _scale(p, "images of at least 96 px")
    _out(p)

    p = verb("activations", "the top images of a dataset for channels of a layer")
    _model(p)
    _data(p)
    p.add_argument("--layer", default="conv3")
    p.add_argument("--channels", default=None, help="e.g. 0-7 or 3,17 (default: first 8)")
    p.add_argument("--top", type=_positive, default=9, help="images per channel (official: 9)")
    _scale(p, "images of at least 96 px")
    _out(p)

    p = verb("gradient-ascent", "inputs optimised to fire channels (L2 penalty + Gaussian blur)")
    _model(p)

    d = AscentConfig()
    p.add_argument("--layer", default="conv3")
    p.add_argument("--channels", default="0-5", help="e.g. 0-5 or 3,17 (default 0-5)")
    p.add_argument("--iters", type=_positive, default=d.iters)
    p.add_argument("--lr", type=float_in(0, 1e3, open_low=True), default=d.lr,
                   help=f"RMS step per normalised input value (default {d.lr})")
    p.add_argument("--wd", type=float_in(0, 1e6), default=d.weight_decay,
                   help="L2 penalty on the input")
    p.add_argument("--sigma", type=float_in(0, 100), default=d.sigma,
                   help="Gaussian blur sigma (pixels)")
    p.add_argument("--blur-every", type=_positive, default=d.blur_every,
                   help="blur after every N steps (thesis: 5)")
    p.add_argument("--objective", choices=OBJECTIVES, default=d.objective,
                   help="ce: official -CE over channel means (selective); mean: channel mean")
    p.add_argument("--noise-std", type=float_in(0, 10), default=d.noise_std)
    p.add_argument("--size", type=_positive, default=None, help="input side (default: native)")
    p.add_argument("--seed", type=seed, default=d.seed)
    p.add_argument("--device", default="cpu")
    p.add_argument("--columns", type=_positive, default=None, help="default: all in one row")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="a progress bar with total and ETA (default: when stderr is a terminal)")
    p.add_argument("--scale", type=_positive, default=None,
                   help="enlarge every pixel N x N (default: tiles of at least 128 px)")
    _out(p)

    p = verb("curves", "NMI, losses and cluster statistics per epoch from runs' log.jsonl")
    p.add_argument("runs", nargs="+", type=Path, help="run folder(s) or log.jsonl file(s)")
    p.add_argument("--columns", type=_positive, default=3, help="panels per row")
    _out(p)
