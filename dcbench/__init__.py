"""dcbench: benchmark suite and model hub for DeepCluster-style self-supervised CNNs.

The public facade, under timm's names: `load_model(name, pretrained=True)`, `list_models`,
`Backbone`, `resolve_data_config`, `create_transform`, `__version__`, and the errors
(`UserError` is a ValueError; `UnknownNameError` a KeyError; `MissingFileError` a
FileNotFoundError; `NetworkError` a ConnectionError). The layers below
(core, data, models, clustering, engine, training/protocols/viz, leaderboards, cli) are
described in docs/internals.md.
"""

from __future__ import annotations

from dcbench.core.errors import MissingFileError, NetworkError, UnknownNameError, UserError
from dcbench.core.version import __version__
from dcbench.models.backbone import Backbone
from dcbench.models.data_config import create_transform, resolve_data_config
from dcbench.models.factory import list_models, load_model

__all__ = ["Backbone", "MissingFileError", "NetworkError", "UnknownNameError", "UserError",
           "__version__", "create_transform", "list_models", "load_model", "resolve_data_config"]
