"""The one Registry: duplicates refused, unknown names listed with a suggestion, globs."""

from __future__ import annotations

import pytest

from dcbench.core.errors import UserError
from dcbench.core.registry import Registry
from dcbench.data.transforms import PIPELINES
from dcbench.models.archs import ARCHS
from dcbench.models.sources.catalog import CATALOG
from dcbench.protocols.base import PROTOCOLS, list_protocols
from dcbench.training.config import RECIPES


def test_register_get_and_glob():
    reg: Registry[int] = Registry("widget")
    reg.register("alpha", 1)
    reg.decorator("beta")(2)
    assert reg.get("alpha") == 1 and "beta" in reg and len(reg) == 2
    assert reg.names("a*") == ["alpha"] and reg.values() == [1, 2]


def test_duplicates_are_refused():
    reg: Registry[int] = Registry("widget")
    reg.register("alpha", 1)
    with pytest.raises(ValueError, match="widget 'alpha' is already registered"):
        reg.register("alpha", 2)


def test_unknown_name_lists_valid_ones_and_suggests():
    reg: Registry[int] = Registry("widget")
    reg.register("alpha", 1)
    with pytest.raises(UserError, match=r"unknown widget 'alpah'; valid: alpha\. Did you mean"):
        reg.get("alpah")


def test_every_registry_of_the_package_is_a_registry():
    list_protocols()  # imports the built-in protocol modules
    for registry, expected in ((PROTOCOLS, "linear-conv"), (ARCHS, "alexnet"),
                               (PIPELINES, "center_crop"), (CATALOG, "deepcluster-alexnet"),
                               (RECIPES, "tiny")):
        assert isinstance(registry, Registry) and expected in registry
