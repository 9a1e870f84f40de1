"""`hub pull`: turn a catalog name into a verified hub-format folder in the dcbench cache."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

from dcbench.core.errors import NetworkError, UserError
from dcbench.core.files import write_json
from dcbench.core.home import hub_cache_dir
from dcbench.models.backbone import Backbone
from dcbench.models.checkpoints import HUB_CONFIG, HUB_WEIGHTS, save_hub_dir
from dcbench.models.converters import load_converted
from dcbench.models.model_card import render_model_card
from dcbench.models.sources.catalog import CatalogEntry, get_entry
from dcbench.models.sources.download import download, is_offline
from dcbench.models.sources.hf import pull_hf


def cached_dir(name: str) -> Path:
    """Where a converted catalog model lives: `$DCBENCH_HOME/hub/NAME/`."""
    return hub_cache_dir() / name


def is_cached(name: str) -> bool:
    """Whether `name` is already converted and cached."""
    folder = cached_dir(name)
    return (folder / HUB_CONFIG).is_file() and (folder / HUB_WEIGHTS).is_file()


def pull(name: str, force: bool = False, progress: bool = True) -> Path:
    """Download, verify, convert and cache a catalog model; return its hub folder."""
    entry = get_entry(name)
    if entry.source == "none":
        raise UserError(f"{name}: {entry.availability()}")
    if entry.source == "random":
        raise UserError(f"{name} is built locally (random init); load it, there is nothing to pull")
    if entry.source == "hf":

        return pull_hf(entry.hf_repo or "", entry.revision)
    if is_cached(name) and not force:
        return cached_dir(name)
    if is_offline() and not raw_path(entry).is_file():
        raise NetworkError(f"{name} is not cached at {cached_dir(name)} and dcbench is offline; "
                           f"copy the release file to {raw_path(entry)} to convert it offline "
                           "(or go online)")
    return _pull_url(entry, progress)


def raw_path(entry: CatalogEntry) -> Path:
    """Where the downloaded (or hand-copied) release file of `entry` lives in the cache."""
    return hub_cache_dir() / "downloads" / entry.name / Path(entry.url or "checkpoint.pth.tar").name


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _pull_url(entry: CatalogEntry, progress: bool) -> Path:
    raw = raw_path(entry)
    raw_dir = raw.parent
    # Trust on first use: once a download is recorded, a later (--force) pull must match it.
    expected = entry.sha256 or source_record(entry.name).get("sha256")
    downloaded = not raw.is_file()
    if not downloaded:  # downloaded before, or copied there by hand as the error message says
        sha = _file_sha256(raw)
        if expected and sha != expected:
            raise UserError(f"{raw} has sha256 {sha}, expected {expected}; it is not the "
                            f"{entry.name} release (the file was left in place)")
    else:
        sha = download(entry.url or "", raw, expected, progress=progress)
    prefix = str(entry.extra.get("sha256_prefix", ""))
    if prefix and not sha.startswith(prefix):
        where = "the file was removed" if downloaded else "the file was left in place"
        if downloaded:
            raw.unlink(missing_ok=True)
        raise UserError(f"{entry.name}: {raw.name} has sha256 {sha[:12]}..., but its "
                        f"published name says it starts with {prefix}; {where}")
    try:
        model = load_converted(raw, entry.converter)
    except UserError:
        if downloaded:  # a file the user copied in is theirs to remove
            raw.unlink(missing_ok=True)
        raise
    model.name = entry.name
    folder = cached_dir(entry.name)
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    extra = {"name": entry.name, "source_url": entry.url, "source_sha256": sha}
    save_hub_dir(model, staging, card=entry_card(entry, model, sha), extra_config=extra,
                 metadata={"source_sha256": sha})
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    write_json(raw_dir / "download.json", {"url": entry.url, "sha256": sha})
    return folder


def source_record(name: str) -> dict[str, str]:
    """What the cache knows about a pulled model (url, sha256); a corrupt record is an error
    (it pins the hash of later pulls, so it is never silently dropped)."""
    path = hub_cache_dir() / "downloads" / name / "download.json"
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):
        record = None
    sha = record.get("sha256") if isinstance(record, dict) else None
    if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise UserError(f"{path} is corrupt (expected JSON with a 64-hex sha256); delete it to "
                        "pull again")
    return record


def entry_card(entry: CatalogEntry, model: Backbone, source_sha256: str | None = None) -> str:
    """The model card of a converted catalog model (no results yet: those come from the store)."""

    provenance = {"source": entry.availability(), "paper": entry.paper, "license": entry.license,
                  "source_sha256": source_sha256 or "", "notes": entry.notes}
    keys = ("dataset", "clustering", "k", "lr", "wd", "epochs")
    training = {k: v for k, v in entry.as_dict().items() if k in keys and v not in (None, "")}
    return render_model_card(model.config, name=entry.name, provenance=provenance,
                             training=training)
