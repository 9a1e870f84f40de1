"""Held-out selection: refuses a split too small to hold out anything."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dcbench.core.errors import UserError
from dcbench.protocols.probe.batch_sources import TensorSource
from dcbench.protocols.probe.feature_cache import FeatureSet
from dcbench.protocols.probe.heads import LinearHead, OptimSettings
from dcbench.protocols.probe.selection import FitSettings, fit_with_selection, select_and_fit

SETTINGS = FitSettings(((0.1, 0.0),), OptimSettings(0.9, "constant"), 1, 4, 4, 0)


def test_too_small_for_a_heldout_split_is_refused():
    src = TensorSource({"x": FeatureSet(torch.zeros(2, 3), torch.tensor([0, 1]),
                                        torch.arange(2))})
    with pytest.raises(UserError, match="too small"):
        select_and_fit(["x"], lambda _: LinearHead(3, 2), src, src, np.array([0, 1]), SETTINGS,
                       0.5)
    with pytest.raises(ValueError, match="non-empty held-out"):
        fit_with_selection(["x"], lambda _: LinearHead(3, 2), src, src, np.arange(2),
                           np.zeros(0, dtype=np.int64), SETTINGS)
