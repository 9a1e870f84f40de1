"""Progress bars with a total and an ETA (tqdm), one convention for every long loop.

A bar always knows its total (images, iterations or epochs), so it shows an ETA; it writes
to stderr, never breaks a pipe, and is off when `enabled` is False or `TQDM_DISABLE` is set.
"""

from __future__ import annotations

import sys

from tqdm import tqdm


def progress_bar(total: int | None, desc: str, unit: str = "it", enabled: bool = True,
                 initial: int = 0, leave: bool = False) -> tqdm:
    """A tqdm bar over `total` `unit`s (ETA shown), starting at `initial` (resumed work)."""
    return tqdm(total=total, desc=desc, unit=unit, initial=initial, disable=not enabled,
                leave=leave, dynamic_ncols=True, file=sys.stderr)
