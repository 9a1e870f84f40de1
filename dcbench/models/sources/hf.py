"""Hugging Face Hub: pull a dcbench hub-format repo (pinned revision), push a hub folder."""

from __future__ import annotations

import re
from pathlib import Path

from dcbench.core.errors import NetworkError, UserError
from dcbench.models.checkpoints import HUB_CARD, HUB_CONFIG, HUB_WEIGHTS
from dcbench.models.sources.network import hf_cache_dir, hf_offline, network_ok

HUB_FILES = [HUB_CONFIG, HUB_WEIGHTS, HUB_CARD]


_COMMIT = re.compile(r"[0-9a-f]{40}")
_REF_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
_REPO_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def check_revision(revision: str) -> str:
    """A 40-hex commit, or a branch/tag name (git ref rules: no '..', no empty or dot-led
    parts, `[A-Za-z0-9._-]` separated by '/'); anything else, e.g. a path, is refused."""
    parts = revision.split("/")
    ok = _COMMIT.fullmatch(revision) or (
        len(revision) <= 255 and ".." not in revision and not revision.endswith(".lock")
        and all(_REF_PART.fullmatch(p) for p in parts))
    if not ok:
        raise UserError(f"invalid Hugging Face revision {revision!r}; expected a branch or tag "
                        "name (e.g. main, v1.0) or a 40-hex commit")
    return revision


def parse_hf_spec(spec: str) -> tuple[str, str | None]:
    """`org/repo[@rev]` -> (repo_id, revision), both checked."""
    repo, _, revision = spec.partition("@")
    parts = repo.split("/")
    if len(parts) != 2 or not all(_REPO_PART.fullmatch(p) and ".." not in p for p in parts):
        raise UserError(f"expected a Hugging Face repo id like org/name[@revision], got {spec!r}")
    return repo, check_revision(revision) if revision else None


def pull_hf(repo_id: str, revision: str | None = None, cache_dir: str | Path | None = None) -> Path:
    """Download (or reuse from the HF cache) the hub-format files; return the snapshot folder.

    Offline (`HF_HUB_OFFLINE=1`) it serves only from the cache and says so when it cannot.
    Only safetensors weights are fetched: pickles are never published nor pulled.
    """
    from huggingface_hub import (  # lazy: slow to import; only for Hub calls and cards
        constants,
        snapshot_download,
    )
    from huggingface_hub.errors import (  # lazy: slow to import; only for Hub calls
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    repo_id, _ = parse_hf_spec(repo_id)
    if revision is not None:
        check_revision(revision)
    online = network_ok()
    try:
        with hf_offline(not online):
            folder = snapshot_download(
                repo_id, revision=revision, allow_patterns=HUB_FILES,
                cache_dir=str(cache_dir) if cache_dir else None,
            )
    except LocalEntryNotFoundError:
        raise NetworkError(
            f"hf-hub:{repo_id}{'@' + revision if revision else ''} is not in the Hugging Face "
            f"cache ({cache_dir or hf_cache_dir()}) and the Hub cannot be reached (offline?): "
            f"run `dcbench hub pull hf-hub:{repo_id}` where there is network and copy that "
            "cache, or pass the model's local folder instead"
        ) from None
    except (RepositoryNotFoundError, RevisionNotFoundError) as err:
        raise UserError(f"hf-hub:{repo_id}: {err.__class__.__name__}: {err}") from None
    except (HfHubHTTPError, OSError) as err:
        raise UserError(f"cannot download hf-hub:{repo_id}: {err}") from None
    folder = Path(folder)
    root = Path(cache_dir or constants.HF_HUB_CACHE).resolve()
    if not folder.resolve().is_relative_to(root):
        raise UserError(f"hf-hub:{repo_id}@{revision} resolved to {folder}, outside the Hugging "
                        f"Face cache {root}; refused")
    if not (folder / HUB_WEIGHTS).is_file():
        raise UserError(
            f"hf-hub:{repo_id} has no {HUB_WEIGHTS}; dcbench only loads safetensors weights"
        )
    return folder


def push_hf(folder: str | Path, repo_id: str, *, private: bool = False,
            revision: str | None = None, message: str | None = None) -> str:
    """Create the repo if needed and upload the hub folder in one commit; return its URL."""
    from huggingface_hub import HfApi  # lazy: slow to import; only for Hub calls and cards
    from huggingface_hub.errors import (  # lazy: slow to import; only for Hub calls
        HfHubHTTPError,
        OfflineModeIsEnabled,
    )

    folder = Path(folder)
    for name in HUB_FILES:
        if not (folder / name).is_file():
            raise UserError(f"{folder} lacks {name}; push needs a complete hub folder")
    pickle_suffixes = (".bin", ".pth", ".pt", ".pkl")
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in pickle_suffixes)
    if not network_ok():
        raise NetworkError(
            f"cannot push to {repo_id}: huggingface.co cannot be reached (offline?); the hub "
            f"folder {folder} is complete, push it later or upload it with `hf upload`"
        )
    api = HfApi()
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id, folder_path=str(folder), revision=revision,
            allow_patterns=HUB_FILES, commit_message=message or "Upload dcbench model",
        )
    except OfflineModeIsEnabled:
        raise UserError("cannot push: HF_HUB_OFFLINE is set") from None
    except (HfHubHTTPError, OSError) as err:
        raise UserError(f"push to {repo_id} failed: {err}") from None
    if pickles:
        print(f"note: not uploaded (pickles are never published): {', '.join(pickles)}")
    return str(getattr(info, "commit_url", None) or f"https://huggingface.co/{repo_id}")
