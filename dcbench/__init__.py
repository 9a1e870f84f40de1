"""dcbench: benchmark suite and model hub for DeepCluster-style self-supervised CNNs."""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from dcbench.models.backbone import Backbone

__all__ = ["__version__", "list_models", "load_model"]


def load_model(spec: str) -> Backbone:
    """Load a backbone from a catalog name, hub dir, checkpoint file, `hf-hub:` or `torchvision:`.

    See `dcbench.models.factory.load_model` for the accepted specs.
    """
    from dcbench.models.factory import load_model as _load

    return _load(spec)


def list_models(pattern: str = "*") -> list[str]:
    """Catalog names (and architectures) matching a glob pattern, e.g. `deepcluster*`."""
    from dcbench.models.factory import list_models as _list

    return _list(pattern)
