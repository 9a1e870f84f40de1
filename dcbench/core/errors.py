"""The exception types that the CLI turns into a clear message and exit status 2.

`UserError` is a `ValueError` (bad input), so library users can catch the builtin type they
already know; its subclasses also derive from the matching builtin: `UnknownNameError` is a
`KeyError` (an unknown model, layer, table or protocol name) and `MissingFileError` is a
`FileNotFoundError`. `NetworkError` marks a download that could not happen (offline).
"""

from __future__ import annotations

import difflib


class UserError(ValueError):
    """Bad input from the user: a missing folder, an unknown name, a refused checkpoint.

    The message must say what is wrong and what was expected. `dcbench` prints it on one
    line (plus an optional `detail` block, e.g. a key report or an expected folder layout)
    and exits with status 2. Nothing may have been written half-way when it is raised.
    """

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail

    def __str__(self) -> str:
        # KeyError's own __str__ would quote the message; keep it plain for every subclass.
        return str(self.args[0]) if self.args else ""


class UnknownNameError(UserError, KeyError):
    """An unknown model, architecture, layer, table or protocol name (also a `KeyError`)."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the user named does not exist (also a `FileNotFoundError`)."""


class NetworkError(UserError, ConnectionError):
    """A download that cannot happen (offline, unreachable host); says where to put the file."""


class LoaderWorkerDied(UserError, RuntimeError):
    """A DataLoader worker process died (killed by the OOM killer or `kill -9`): not bad
    input, but one line that says what happened and that `--resume` continues the run."""


class RankFailed(RuntimeError):
    """Another process of a torchrun launch failed (its own error is on its stderr): the
    CLI prints `dcbench: error: rank R of N failed: ...` and exits 1 on the other ranks."""


def did_you_mean(name: str, valid: list[str] | tuple[str, ...]) -> str:
    """A short 'valid choices are ...' suffix for unknown-name errors."""
    close = difflib.get_close_matches(name, list(valid), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return f"valid: {', '.join(sorted(valid))}.{hint}"
