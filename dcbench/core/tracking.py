"""Live views of a long run: the `Tracker` interface every loop reports to.

Training, evaluation and `reproduce` report scalars, histograms, images and text under stable
tag names (README "Watch a long run") to a `Tracker`. The base class does nothing, so a loop
reports unconditionally and a run without the optional extras behaves exactly as before;
`core.trackers.open_tracker` returns TensorBoard and/or Weights & Biases writers when their
packages are installed and asked for.

A run's values are grouped in *sections* (`train`, `select`, `final`, `voc07-cls`, `results`,
`reproduce`): one TensorBoard run folder `RUN/tensorboard/SECTION` each, and the key prefix
`SECTION/` with its own step axis `SECTION/step` in W&B. `start_section(section, first_step)`
says where a (resumed) loop starts: TensorBoard discards what an interrupted run wrote at
steps >= first_step (`purge_step`), so every step appears once.

Loops that are not handed a tracker (the protocols' training phases) report to the *active*
one: `with activated(tracker):` around the run (the CLI), `active()` inside the loop.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from dcbench.core.errors import UserError

if TYPE_CHECKING:  # no numpy at import: the CLI parsers check --wandb with this module
    import numpy as np

#: `--wandb PROJECT[/ENTITY]`: the characters W&B accepts in project and entity names
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


class Tracker:
    """Where a run reports its live values. This base class drops everything (no extras)."""

    def start_section(self, section: str, first_step: int) -> None:
        """The loop of `section` (re)starts at `first_step`: older values at or after it go."""

    def scalars(self, section: str, step: int, values: Mapping[str, float | int | None]
                ) -> None:
        """Numbers at `step` (None and non-finite values are skipped)."""

    def histogram(self, section: str, step: int, tag: str, values: np.ndarray) -> None:
        """A distribution (e.g. the cluster sizes) at `step`."""

    def image(self, section: str, step: int, tag: str, image: np.ndarray) -> None:
        """An (H, W, 3) uint8 picture at `step`."""

    def text(self, section: str, step: int, tag: str, text: str) -> None:
        """A short text (a status, the selected head) at `step`."""

    def close(self) -> None:
        """Flush and close the writers."""


class MultiTracker(Tracker):
    """Reports to several trackers at once (TensorBoard and W&B)."""

    def __init__(self, trackers: Sequence[Tracker]) -> None:
        self.trackers = list(trackers)

    def start_section(self, section: str, first_step: int) -> None:
        for tracker in self.trackers:
            tracker.start_section(section, first_step)

    def scalars(self, section: str, step: int, values: Mapping[str, float | int | None]
                ) -> None:
        for tracker in self.trackers:
            tracker.scalars(section, step, values)

    def histogram(self, section: str, step: int, tag: str, values: np.ndarray) -> None:
        for tracker in self.trackers:
            tracker.histogram(section, step, tag, values)

    def image(self, section: str, step: int, tag: str, image: np.ndarray) -> None:
        for tracker in self.trackers:
            tracker.image(section, step, tag, image)

    def text(self, section: str, step: int, tag: str, text: str) -> None:
        for tracker in self.trackers:
            tracker.text(section, step, tag, text)

    def close(self) -> None:
        for tracker in self.trackers:
            tracker.close()


@dataclasses.dataclass
class TrackingOptions:
    """What the user asked for: `--no-tb` (tensorboard=False), `--wandb PROJECT[/ENTITY]`,
    (training) a callback drawing images of the model every `image_every` epochs, and the
    command line (for the resume command `dcbench status` prints)."""

    tensorboard: bool = True
    wandb: str | None = None
    images: Callable[..., dict[str, np.ndarray]] | None = None
    command: list[str] | None = None  # the words typed, recorded for `dcbench status`


def parse_wandb_target(text: str) -> tuple[str, str | None]:
    """`PROJECT[/ENTITY]` -> (project, entity); a malformed name is a UserError."""
    parts = text.split("/")
    if len(parts) > 2 or not all(parts) or not all(set(p) <= _NAME_CHARS for p in parts):
        raise UserError(f"--wandb {text!r} is not PROJECT or PROJECT/ENTITY (letters, digits, "
                        "'-', '_', '.')")
    return parts[0], (parts[1] if len(parts) == 2 else None)


_ACTIVE: list[Tracker] = []


def active() -> Tracker:
    """The tracker of the run in progress (a no-op one when none is active)."""
    return _ACTIVE[-1] if _ACTIVE else Tracker()


@contextlib.contextmanager
def activated(tracker: Tracker) -> Iterator[Tracker]:
    """Make `tracker` the active one inside the block, and close it at the end."""
    _ACTIVE.append(tracker)
    try:
        yield tracker
    finally:
        _ACTIVE.pop()
        tracker.close()
