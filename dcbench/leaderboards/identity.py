"""One identity per model: its weights' sha256, shown under one short name.

A result row names its model twice: `model` (what the user called it) and `model_sha256`
(the weights). The same weights reached through a relative and an absolute path, or named
differently on two days, are one model: rows are grouped by sha256 (by name only for rows
that carry no sha256) and shown under one display name: the name most runs stored it under
(ties: the most recent), made short (`/abs/runs/tiny/final` -> `tiny`; catalog names,
`--name` names and `torchvision:`-style specs unchanged). Two models that would share a
display name get `@SHA8` appended. Rows written by older versions (paths as names) read the
same way.

Users name a model by its display name, any name or path it was evaluated under, a path
to its weights in any form (relative, absolute, a run dir: its sha256 is read), or a
prefix of its sha256; an ambiguous or unknown handle is a one-line `UserError`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from dcbench.core.errors import UserError
from dcbench.core.state_files import try_read_json_object
from dcbench.models.factory import load_model
from dcbench.models.sources import catalog

SPEC_COLUMN = "model_spec"  # the name a row was stored under, kept next to the display name
KEY_COLUMN = "model_key"  # the identity: sha256, or `name:LABEL` for rows without one
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+-]*:(?![\\/])")  # torchvision:, hf-hub:, arch:
_GENERIC_FILES = {"model.safetensors", "checkpoint.pth.tar", "checkpoint.pth",
                  "checkpoint.tar"}
_HEX = re.compile(r"^[0-9a-f]{6,64}$")
MIN_SHA_PREFIX = 6


def model_label(spec: str) -> str:
    """A short display name for a model spec: paths become their folder name.

    `runs/tiny/final` -> `tiny`; `runs/tiny/checkpoints/latest` -> `tiny`;
    `/x/models/tiny-sobel` -> `tiny-sobel`; `ckpt/model.safetensors` -> `ckpt`;
    `my.pth.tar` -> `my`; names and `scheme:` specs are unchanged.
    """
    text = str(spec).strip()
    if _SCHEME.match(text) or ("/" not in text and "\\" not in text):
        return text
    path = Path(text.rstrip("/\\"))
    if path.name in _GENERIC_FILES and path.parent.name:
        path = path.parent
    elif path.name.endswith((".safetensors", ".pth", ".pth.tar", ".tar")):
        return path.name.split(".")[0] or text
    if path.name in ("final", "latest") and path.parent.name:
        path = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    return path.name or text


def identify(results: pd.DataFrame) -> pd.DataFrame:
    """`results` with `model` replaced by the display name of its identity (see module doc).

    Adds `model_spec` (the stored name) and `model_key` (the identity). A frame that was
    identified already is returned as it is (a subset keeps the names of the whole).
    """
    if KEY_COLUMN in results:
        return results
    frame = results.copy()
    if SPEC_COLUMN not in frame:
        frame[SPEC_COLUMN] = frame["model"].astype(str)
    labels = frame[SPEC_COLUMN].map(model_label)
    shas = frame["model_sha256"].fillna("").astype(str)
    frame[KEY_COLUMN] = [sha if sha else f"name:{label}" for sha, label in
                         zip(shas, labels, strict=True)]
    if frame.empty:
        return frame
    # per identity, the name the most runs stored it under; ties: the most recent name
    runs = (frame.assign(_label=labels, _t=frame["timestamp"].astype(str))
            .groupby([KEY_COLUMN, "_label"], sort=False)
            .agg(_runs=("run_id", "nunique"), _t=("_t", "max")).reset_index())
    latest = (runs.sort_values(["_runs", "_t"], kind="stable")
              .groupby(KEY_COLUMN)["_label"].last())
    counts = latest.value_counts()
    names = {key: (name + f"@{key[:8]}" if counts[name] > 1 and not key.startswith("name:")
                   else name) for key, name in latest.items()}
    frame["model"] = frame[KEY_COLUMN].map(names)
    return frame


NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+@=-]{0,63}")


SHA_PREFIX = re.compile(r"[0-9a-fA-F]{6,}")


def check_name(name: str) -> str:
    """A `--name` for a model: 1-64 letters, digits and `._+@=-`, starting alphanumeric."""
    if not NAME_PATTERN.fullmatch(str(name)):
        raise UserError(f"--name {name!r}: use 1-64 letters, digits and ._+@=- (starting "
                        "with a letter or digit), e.g. tiny-sobel")
    if SHA_PREFIX.fullmatch(str(name)):  # `compare NAME` would read it as a weights prefix
        raise UserError(f"--name {name}: 6 or more hex digits read as a sha256 prefix where "
                        f"models are named; add a non-hex character, e.g. {name}-run")
    return str(name)


def card_name(spec: str) -> str | None:
    """The `name` a hub folder's config.json records (convert and pull write it), if any."""
    if _SCHEME.match(str(spec)):
        return None
    path = Path(str(spec)).expanduser()
    for folder in _config_folders(path):
        config = folder / "config.json"
        if config.is_file():
            name = (try_read_json_object(config) or {}).get("name")
            return str(name) if name and NAME_PATTERN.fullmatch(str(name)) else None
    return None


def default_name(spec: str, sha256: str, stored: pd.DataFrame | None = None) -> str:
    """The name a model is stored under when the user gives none.

    The display name the store already holds for these weights (so a `--name` given once
    sticks), else the card name, else the spec made short (`model_label`).
    """
    if stored is not None and not stored.empty:
        known = stored[stored["model_sha256"] == sha256]
        if not known.empty:
            latest = known.assign(_t=known["timestamp"].astype(str)).sort_values(
                "_t", kind="stable")
            return model_label(str(latest["model"].iloc[-1]))
    return card_name(spec) or model_label(spec)


def weights_sha256_of(path: Path) -> str:
    """The weights sha256 of a hub folder, training run dir or checkpoint file.

    Read from the `weights_sha256` that hub folders record in config.json, else computed
    by loading the weights (the same hash `dcbench eval` stores).
    """
    for folder in (path, path / "final", path / "checkpoints" / "latest"):
        config = folder / "config.json"
        if folder.is_dir() and config.is_file() and (folder / "model.safetensors").is_file():
            sha = (try_read_json_object(config) or {}).get("weights_sha256")
            if sha:
                return str(sha)
            return load_model(str(folder)).weights_sha256()
    return load_model(str(path)).weights_sha256()


def resolve_model(results: pd.DataFrame, spec: str) -> str:
    """The identity (`model_key`) that `spec` names among `identify`-ed `results`.

    Tried in order: a display name; a path to weights (by their sha256); a name or path
    the model was stored under (as typed, or made short); a sha256 prefix (>= 6 hex).
    """
    text = str(spec).strip()
    keys = _keys(results, results["model"] == text)
    if keys:
        return keys[0]
    path = Path(text).expanduser()
    if not _SCHEME.match(text) and path.exists():
        sha = weights_sha256_of(path)
        keys = _keys(results, results["model_sha256"] == sha)
        if not keys:
            raise UserError(f"no results for model {text!r} (weights sha256 {sha[:12]}); "
                            + _known(results))
        return keys[0]
    stored = results[SPEC_COLUMN].astype(str)
    hits = _keys(results, (stored == text) | (stored.map(model_label) == model_label(text)))
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise UserError(f"model {text!r} is ambiguous: it names " + _listing(results, hits))
    if _HEX.match(text.lower()):
        hits = _keys(results, results["model_sha256"].astype(str).str.startswith(text.lower()))
        if len(hits) > 1:
            raise UserError(f"sha256 prefix {text!r} is ambiguous: it matches "
                            + _listing(results, hits) + "; give more digits")
        if hits:
            return hits[0]
    raise UserError(f"no results for model {text!r}; " + _known(results))


def resolve_models(results: pd.DataFrame, specs: Iterable[str]) -> list[str]:
    """`resolve_model` for each spec; two specs naming the same model are an error."""
    keys: list[str] = []
    for spec in specs:
        key = resolve_model(results, spec)
        if key in keys:
            raise UserError(f"{spec!r} names the same model as an earlier argument "
                            f"({display_name(results, key)})")
        keys.append(key)
    return keys


def display_name(results: pd.DataFrame, key: str) -> str:
    """The display name of identity `key`."""
    return str(results.loc[results[KEY_COLUMN] == key, "model"].iloc[0])


def _keys(results: pd.DataFrame, mask: pd.Series) -> list[str]:
    return list(dict.fromkeys(results.loc[mask, KEY_COLUMN]))


def _listing(results: pd.DataFrame, keys: list[str]) -> str:
    return ", ".join(f"{display_name(results, k)} ({k[:12]})" for k in keys)


def _known(results: pd.DataFrame) -> str:
    names = sorted(set(results["model"].astype(str)))
    return "models in the store: " + (", ".join(names) if names else "none")


ARCH_COLUMN = "model_arch"  # `alexnet_small (Sobel)`, `torchvision:resnet18 (RGB)`, or ""
RANDOM_COLUMN = "model_random"  # whether the model is a random-init baseline


def spec_architecture(spec: str) -> str:
    """The architecture a model spec names, as `ARCH (Sobel|RGB)`, or "" when unknown.

    Catalog names, `arch:` and `torchvision:`/`timm:` specs, and paths to hub folders or
    run dirs that still exist (their config.json) are known; anything else is not.
    """
    text = str(spec).strip()
    base, _, query = text.partition("?")
    if catalog.has_entry(base):
        entry = catalog.get_entry(base)
        return _arch_text(entry.arch, bool(entry.sobel))
    if base.startswith("arch:"):
        sobel = re.search(r"(?:^|&)sobel=(1|true|True|yes)(?:&|$)", query) is not None
        return _arch_text(base.removeprefix("arch:"), sobel)
    if base.startswith(("torchvision:", "timm:")):
        return _arch_text(base.partition("@")[0], False)
    if _SCHEME.match(text):
        return ""
    path = Path(text).expanduser()
    for folder in _config_folders(path):
        config = folder / "config.json"
        if config.is_file():
            data = try_read_json_object(config)
            if data is None:
                return ""
            if isinstance(data, dict) and data.get("arch"):
                return _arch_text(str(data["arch"]), bool(data.get("sobel")))
    return ""


def _config_folders(path: Path) -> list[Path]:
    """Where the config.json of the model at `path` can be: the hub folder, a run dir's
    final/ or checkpoints/latest/, or beside a weights file; nothing for a non-path."""
    if path.is_dir():
        return [path, path / "final", path / "checkpoints" / "latest"]
    return [path.parent] if path.is_file() else []


def _arch_text(arch: str, sobel: bool) -> str:
    return f"{arch} ({'Sobel' if sobel else 'RGB'})"


def with_architectures(results: pd.DataFrame, runs: pd.DataFrame | None = None
                       ) -> pd.DataFrame:
    """`identify`-ed results plus `model_arch`, the architecture of each row's model, and
    `model_random`, whether it is a random-init baseline (`is_random_init` of its name, its
    stored spec, or the spec its run record names: `--name r18 --model x@random`).

    The architecture comes from the run record (`dcbench eval` stores arch and Sobel; older
    runs stored the model spec, which is resolved when it still exists), else from the
    row's own stored name. The random init that low-shot trains next to a checkpoint shares
    its run, and its architecture.
    """
    frame = identify(results)
    if ARCH_COLUMN in frame:
        return frame
    frame = frame.copy()
    if frame.empty:
        frame[ARCH_COLUMN] = pd.Series(dtype=str)
        frame[RANDOM_COLUMN] = pd.Series(dtype=bool)
        return frame
    by_run: dict[str, str] = {}
    run_spec: dict[str, str] = {}
    if runs is not None and not runs.empty:
        for run_id, extra in zip(runs["run_id"], runs["extra"], strict=True):
            extra = extra if isinstance(extra, dict) else {}
            run_spec[str(run_id)] = str(extra.get("model") or "")
            if extra.get("arch"):
                by_run[str(run_id)] = _arch_text(str(extra["arch"]), bool(extra.get("sobel")))
            elif extra.get("model"):
                by_run[str(run_id)] = spec_architecture(str(extra["model"]))
    cache: dict[str, str] = {}
    arch = []
    for run_id, spec in zip(frame["run_id"].astype(str), frame[SPEC_COLUMN], strict=True):
        known = by_run.get(run_id, "")
        if not known:
            if spec not in cache:
                cache[spec] = spec_architecture(spec)
            known = cache[spec]
        arch.append(known)
    frame[ARCH_COLUMN] = arch
    per_model = frame[frame[ARCH_COLUMN] != ""].groupby(KEY_COLUMN)[ARCH_COLUMN].first()
    frame[ARCH_COLUMN] = [per_model.get(key, "") for key in frame[KEY_COLUMN]]
    random = pd.Series([is_random_init(name, spec) or is_random_init("", run_spec.get(run, ""))
                        for name, spec, run in zip(frame["model"], frame[SPEC_COLUMN],
                                                   frame["run_id"].astype(str), strict=True)],
                       index=frame.index)
    frame[RANDOM_COLUMN] = random.groupby(frame[KEY_COLUMN]).transform("any").astype(bool)
    return frame


def is_random_init(name: str, spec: str = "") -> bool:
    """Whether a model is a random-init baseline (`random-*`, `@random`, `arch:` specs)."""
    return str(name).startswith("random") or "@random" in str(spec) \
        or str(spec).startswith("arch:") or model_label(str(spec)).startswith("random")
