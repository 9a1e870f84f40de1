"""The one reader of the JSON state files dcbench writes and later reads back (a reproduce
plan.json, a run's run.json, saved draws, hub config.json): torn, edited, non-UTF-8, too deep
or of the wrong shape, each is one UserError line naming the file, never a traceback. A UTF-8
byte-order mark (Windows editors add one) is accepted."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dcbench.core.errors import MissingFileError, UserError

KeyTypes = Mapping[str, type | tuple[type, ...]]


def read_json_state(path: str | os.PathLike, what: str, *, expect: type = dict,
                    keys: KeyTypes | None = None,
                    hint: str = "restore it, or start again in a new folder") -> Any:
    """The parsed file, checked to be an `expect` (dict: holding `keys` of their types)."""
    path = Path(path)

    def damaged(reason: str) -> UserError:
        return UserError(f"{what} {path} is damaged ({reason}); {hint}")

    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise MissingFileError(f"{what} {path} is missing; {hint}") from None
    except UnicodeDecodeError:
        raise damaged("not UTF-8 text") from None
    except OSError as err:
        raise damaged(f"unreadable: {err.strerror or err}") from None
    try:
        data = json.loads(text)
    except RecursionError:
        raise damaged("nested too deeply") from None
    except ValueError as err:
        raise damaged(f"not valid JSON: {str(err).splitlines()[0][:80]}") from None
    if not isinstance(data, expect):
        raise damaged(f"expected a JSON {'object' if expect is dict else expect.__name__}, "
                      f"got {type(data).__name__}")
    for key, types in (keys or {}).items():
        if key not in data:
            raise damaged(f"no {key!r}")
        if not isinstance(data[key], types) or isinstance(data[key], bool) and bool not in (
                types if isinstance(types, tuple) else (types,)):
            raise damaged(f"{key!r} is {type(data[key]).__name__}")
    return data


def try_read_json_object(path: str | os.PathLike) -> dict[str, Any] | None:
    """A JSON object from `path`, or None when it is missing, unreadable or not an object
    (for optional look-ups, e.g. a name in a hub folder's config.json)."""
    try:
        return read_json_state(path, "file")
    except UserError:
        return None
