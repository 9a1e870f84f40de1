"""The live-view flags shared by `dcbench train`, `eval` and `reproduce` (light: argparse and
`core.tracking` only): `--no-tb` and `--wandb PROJECT[/ENTITY]`."""

from __future__ import annotations

import argparse

from dcbench.core.tracking import TrackingOptions, parse_wandb_target


def add_watch_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `--no-tb` and `--wandb` to a subcommand's parser."""
    parser.add_argument("--no-tb", dest="tensorboard", action="store_false",
                        help="do not write TensorBoard events to RUN/tensorboard/ (written by "
                             "default when tensorboard is installed)")
    parser.add_argument("--wandb", metavar="PROJECT[/ENTITY]",
                        help="also report to Weights & Biases (needs wandb; offline without a "
                             "network, with the `wandb sync` command printed)")


def check_watch_args(args: argparse.Namespace) -> None:
    """Refuse a malformed `--wandb` before anything runs."""
    if getattr(args, "wandb", None) is not None:
        parse_wandb_target(args.wandb)


def tracking_options(args: argparse.Namespace, **extra: object) -> TrackingOptions:
    """The `TrackingOptions` these flags ask for (plus `images=` / `command=`)."""
    return TrackingOptions(tensorboard=getattr(args, "tensorboard", True),
                           wandb=getattr(args, "wandb", None), **extra)  # type: ignore[arg-type]
