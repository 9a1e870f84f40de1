"""Direct downloads (the official DeepCluster URLs): streamed, sha256-checked, atomic."""

from __future__ import annotations

import hashlib
import shutil
import sys
import urllib.error
import urllib.request
from pathlib import Path

from dcbench.core.errors import NetworkError, UserError
from dcbench.core.files import atomic_path
from dcbench.models.sources.network import is_offline, network_ok

__all__ = ["copy_local", "download", "is_offline"]




def download(url: str, dest: Path, expected_sha256: str | None = None,
             progress: bool = True, timeout: float = 60.0) -> str:
    """Download `url` to `dest`, returning its sha256.

    A hash mismatch removes the file and raises; a network failure says so plainly. The file
    only appears at `dest` once complete and verified.
    """
    if not network_ok(url):
        raise NetworkError(
            f"cannot reach {url} (offline?) and {dest} is not cached: download it elsewhere "
            f"and copy it to {dest}, or retry with network access"
        )
    digest = hashlib.sha256()
    try:
        with atomic_path(dest) as tmp:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
                total = int(response.headers.get("Content-Length") or 0)
                done = 0
                while block := response.read(1 << 20):
                    out.write(block)
                    digest.update(block)
                    done += len(block)
                    if progress and total and sys.stderr.isatty():
                        print(f"\r  {dest.name}: {done / total:6.1%} of {total / 1e6:.1f} MB",
                              end="", file=sys.stderr)
            sha = digest.hexdigest()
            if expected_sha256 and sha != expected_sha256:
                raise UserError(
                    f"sha256 mismatch for {url}: got {sha}, expected {expected_sha256}; "
                    "the download was removed"
                )
    except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
        raise NetworkError(
            f"cannot download {url} ({getattr(err, 'reason', err)}); no cached copy at {dest}. "
            "Copy the file there by hand, or retry with network access"
        ) from None
    if progress and sys.stderr.isatty():
        print(file=sys.stderr)
    return sha


def copy_local(src: Path, dest: Path) -> None:
    """Atomically copy a local file into the cache."""
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)
