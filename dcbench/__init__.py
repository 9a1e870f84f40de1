"""dcbench: benchmark suite and model hub for DeepCluster-style self-supervised CNNs.

The public facade, under timm's names: `load_model(name, pretrained=True)`, `list_models`,
`Backbone`, `resolve_data_config`, `create_transform`, `__version__`, and the errors
(`UserError` is a ValueError; `UnknownNameError` a KeyError; `MissingFileError` a
FileNotFoundError; `NetworkError` a ConnectionError). The layers below
(core, data, models, clustering, engine, training/protocols/viz, leaderboards, cli) are
described in docs/internals.md.

The model names are resolved on first use (PEP 562 `__getattr__`): importing `dcbench`, and
so every `dcbench` command, does not import torch until a command needs it, which keeps
`dcbench --help` and argument errors well under a second.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dcbench.core.errors import MissingFileError, NetworkError, UnknownNameError, UserError
from dcbench.core.lazy import lazy_exports
from dcbench.core.version import __version__

if TYPE_CHECKING:
    from dcbench.models.backbone import Backbone
    from dcbench.models.data_config import create_transform, resolve_data_config
    from dcbench.models.factory import list_models, load_model

#: facade name -> the module that defines it (imported on first access)
_LAZY: dict[str, str] = {
    "Backbone": "dcbench.models.backbone",
    "create_transform": "dcbench.models.data_config",
    "resolve_data_config": "dcbench.models.data_config",
    "list_models": "dcbench.models.factory",
    "load_model": "dcbench.models.factory",
}

__all__ = ["Backbone", "MissingFileError", "NetworkError", "UnknownNameError", "UserError",
           "__version__", "create_transform", "list_models", "load_model", "resolve_data_config"]

__getattr__, __dir__ = lazy_exports("dcbench", globals(), _LAZY)
