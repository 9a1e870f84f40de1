"""`dcbench hub`: list, info, pull, convert, card, push."""

from __future__ import annotations

import argparse
from pathlib import Path

from dcbench.core.errors import UserError
from dcbench.core.files import check_output_dir, staged_dir
from dcbench.core.provenance import file_sha256
from dcbench.leaderboards.cards import write_card
from dcbench.leaderboards.headlines import headline_for
from dcbench.models.checkpoints import save_hub_dir
from dcbench.models.converters import load_converted
from dcbench.models.sources.catalog import CatalogEntry, get_entry, list_entries
from dcbench.models.sources.hf import check_revision, parse_hf_spec, push_hf
from dcbench.models.sources.pull import entry_card, is_cached, pull


def run(args: argparse.Namespace) -> int:
    """Dispatch a hub verb."""
    return {"list": _list, "info": _info, "pull": _pull, "convert": _convert, "card": _card,
            "push": _push}[args.verb](args)


def _list(args: argparse.Namespace) -> int:

    entries = list_entries(args.pattern)
    if not entries:
        raise UserError(f"no catalog model matches {args.pattern!r}")
    header = ["name", "arch", "sobel", "headline", "cached", "weights"]
    if args.wide:
        header = [*header[:3], "data", "clustering", *header[3:4], "headline source",
                  *header[4:]]
    rows = [header]
    for e in entries:
        headline = headline_for(e.name)
        cells = {"name": e.name, "arch": e.arch, "sobel": "yes" if e.sobel else "no",
                 "data": e.dataset, "clustering": e.clustering,
                 "headline": headline.short() if headline else "",
                 "headline source": headline.source() if headline else "",
                 "cached": _cached(e),
                 "weights": e.availability() if args.wide else _weights_short(e)}
        rows.append([cells[column] for column in header])
    # columns are as wide as their longest cell: nothing is ever cut
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print(" ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
              .rstrip())
    if not args.wide:
        print("headline: the model's published number (IN = ImageNet linear-probe top-1 %; "
              "VOC07, Oxford5K = mAP %)\ncached: weights already in $DCBENCH_HOME (- = built "
              "locally, or none published)\n`dcbench hub info NAME`: the full record; --wide: "
              "every column")
    return 0


def _cached(entry: CatalogEntry) -> str:
    """yes/no for downloadable weights; '-' where there is nothing to download."""
    if entry.source in ("url", "hf"):
        return "yes" if is_cached(entry.name) else "no"
    return "-"


def _weights_short(entry: CatalogEntry) -> str:
    """Where the weights come from, in a few words (the URL is in `hub info`)."""
    if entry.source == "url":
        return "official download" + (" (sha256 pinned)" if entry.sha256 else "")
    if entry.source == "none":
        return "none published; recipe " + entry.name
    return entry.availability()


def _info(args: argparse.Namespace) -> int:

    entry = get_entry(args.name)
    for key, value in entry.as_dict().items():
        if value not in (None, "", {}):
            print(f"{key:12} {value}")
    print(f"{'weights':12} {entry.availability()}")
    headline = headline_for(entry.name)
    if headline is not None:
        print(f"{'headline':12} {headline.short()} ({headline.source()})")
    print(f"{'cached':12} {_cached(entry)}")
    return 0


def _pull(args: argparse.Namespace) -> int:

    folder = pull(args.name, force=args.force)
    print(f"{args.name}: ready at {folder}")
    return 0


def resolve_hub_folder(target: str) -> Path:
    """A hub folder, or the final (else latest) checkpoint folder of a training run dir."""
    path = Path(target)
    for candidate in (path, path / "final", path / "checkpoints" / "latest"):
        if (candidate / "config.json").is_file() and (candidate / "model.safetensors").is_file():
            return candidate
    raise UserError(
        f"{target} is neither a hub folder nor a training run directory",
        detail="  expected config.json + model.safetensors in it, in final/, "
        "or in checkpoints/latest/",
    )


def _convert(args: argparse.Namespace) -> int:

    check_output_dir(args.out_dir, "OUT_DIR")
    if args.out_dir.exists() and any(args.out_dir.iterdir()):
        raise UserError(f"{args.out_dir} exists and is not empty; choose a new folder")
    # refuses unsafe pickles / missing, unexpected or mis-shaped keys first
    model = load_converted(args.checkpoint, args.layout)
    if args.drop_top_layer and model.top_layer is not None:
        model.remove_top_layer()
    sha = file_sha256(args.checkpoint)
    name = args.name or args.out_dir.name
    model.name = name
    entry = CatalogEntry(
        name=name, arch=model.config["arch"], sobel=bool(model.config["sobel"]),
        source="none", description=f"converted from {args.checkpoint.name}",
        k=model.config.get("num_classes") or None,
        notes=f"Converted by dcbench from {args.checkpoint} (sha256 {sha}).",
    )
    with staged_dir(args.out_dir) as staging:  # private name: a user's OUT.partial is safe
        save_hub_dir(model, staging, card=entry_card(entry, model, sha),
                     extra_config={"name": name, "source_sha256": sha},
                     metadata={"source_sha256": sha})
    head = model.config.get("num_classes") or 0
    print(f"converted {args.checkpoint} -> {args.out_dir} (arch {model.config['arch']}, "
          f"sobel {model.config['sobel']}, top layer {head or 'dropped'}, sha256 {sha[:12]})")
    return 0


def _card(args: argparse.Namespace) -> int:

    folder = resolve_hub_folder(args.target)
    path = write_card(folder, store_path=args.store)
    print(f"wrote {path}")
    return 0


def _push(args: argparse.Namespace) -> int:

    repo, _ = parse_hf_spec(args.repo)
    if args.revision is not None:  # offline, before the card is written
        check_revision(args.revision)
    folder = resolve_hub_folder(args.target)
    write_card(folder, store_path=args.store, hub_repo=repo)
    url = push_hf(folder, repo, private=args.private, revision=args.revision)
    print(f"pushed {folder} -> {url}")
    return 0
