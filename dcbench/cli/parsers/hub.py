"""Arguments of `dcbench hub` (light: no torch, pandas or matplotlib, so `--help` and
argument errors answer before torch is imported; the runner is `dcbench.cli.hub`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dcbench.models.converter_names import CONVERTER_NAMES, OFFICIAL

HELP = "Checkpoint catalog and model hub: list, pull, convert legacy checkpoints, cards, push."
EPILOG = """examples:
  dcbench hub list
  dcbench hub list 'random-*'
  dcbench hub info deepcluster-alexnet
  dcbench hub pull deepcluster-alexnet          # download, verify, convert, cache
  dcbench hub convert ~/deepcluster_models/alexnet/checkpoint.pth.tar out/dc-alexnet
  dcbench hub card runs/tiny                   # write README.md with results from the store
  dcbench hub push runs/tiny --repo my-org/dc-tiny
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Sub-verbs of `dcbench hub`."""
    verbs = parser.add_subparsers(dest="verb", metavar="{list,info,pull,convert,card,push}")
    verbs.required = True
    p = verbs.add_parser("list", help="the catalog: each model's published headline result, "
                                      "whether its weights are cached, where they come from")
    p.add_argument("pattern", nargs="?", default="*", help="glob on names, e.g. 'random-*'")
    p.add_argument("--wide", action="store_true",
                   help="every column (data, clustering, the headline's table, full source)")
    p = verbs.add_parser("info", help="everything the catalog knows about one model")
    p.add_argument("name", help="catalog name (see `dcbench hub list`)")
    p = verbs.add_parser("pull", help="download + verify + convert + cache a catalog model")
    p.add_argument("name", help="catalog name, e.g. deepcluster-alexnet")
    p.add_argument("--force", action="store_true", help="re-download even if cached")
    p = verbs.add_parser("convert", help="a released checkpoint -> hub format folder")
    p.add_argument("checkpoint", type=Path, help="released checkpoint file to convert")
    p.add_argument("--layout", default=OFFICIAL, choices=CONVERTER_NAMES,
                   help="the checkpoint's key layout (default: official DeepCluster .pth.tar; "
                   "swav = DeepCluster-v2/SeLa-v2, vissl-*, mmselfsup-resnet)")
    p.add_argument("out_dir", type=Path, help="new hub folder to write")
    p.add_argument("--name", default=None, help="model name for the card (default: folder name)")
    p.add_argument("--drop-top-layer", action="store_true",
                   help="drop the k-way clustering head (default: keep it)")
    p = verbs.add_parser("card", help="write/refresh README.md (model card) with store results")
    p.add_argument("target", help="a hub folder or a training run directory")
    p.add_argument("--store", type=Path, default=None,
                   help="results store (default: in $DCBENCH_HOME)")
    p = verbs.add_parser("push", help="publish a hub folder or run dir to the Hugging Face Hub")
    p.add_argument("target", help="a hub folder or a training run directory")
    p.add_argument("--repo", required=True, help="org/name on the Hugging Face Hub")
    p.add_argument("--private", action="store_true", help="create the repo as private")
    p.add_argument("--revision", default=None, help="branch to push to")
    p.add_argument("--store", type=Path, default=None, help="results store for the card")
