"""dcbench: benchmark suite and model hub for DeepCluster-style self-supervised CNNs.

The public facade: `load_model`, `list_models`, `Backbone`, `__version__`. The layers below
(core, data, models, clustering, engine, training/protocols/viz, leaderboards, cli) are
described in docs/internals.md.
"""

from __future__ import annotations

from dcbench.core.version import __version__
from dcbench.models.backbone import Backbone
from dcbench.models.factory import list_models, load_model

__all__ = ["Backbone", "__version__", "list_models", "load_model"]
