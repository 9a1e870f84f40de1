"""The checkpoint layouts `dcbench hub convert --layout` accepts, by name.

Kept apart from `converters` (which needs torch) so that the `hub` argument parser can list
them without importing torch; `converters` checks at import that its table matches.
"""

from __future__ import annotations

OFFICIAL = "deepcluster-official"
#: the official DeepCluster layout first, then the third-party converters
CONVERTER_NAMES: tuple[str, ...] = (
    OFFICIAL, "swav", "vissl-resnet", "vissl-alexnet-deepcluster", "mmselfsup-resnet",
)
