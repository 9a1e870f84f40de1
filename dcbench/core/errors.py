"""The one exception type that the CLI turns into a clear message and exit status 2."""

from __future__ import annotations

import difflib


class UserError(Exception):
    """Bad input from the user: a missing folder, an unknown name, a refused checkpoint.

    The message must say what is wrong and what was expected. `dcbench` prints it on one
    line (plus an optional `detail` block, e.g. a key report or an expected folder layout)
    and exits with status 2. Nothing may have been written half-way when it is raised.
    """

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail


def did_you_mean(name: str, valid: list[str] | tuple[str, ...]) -> str:
    """A short 'valid choices are ...' suffix for unknown-name errors."""

    close = difflib.get_close_matches(name, list(valid), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return f"valid: {', '.join(sorted(valid))}.{hint}"
