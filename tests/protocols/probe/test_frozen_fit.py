"""Frozen-probe settings: held-out vs fixed weight decay, and the config checks."""

from __future__ import annotations

import pytest

from dcbench.core.errors import UserError
from dcbench.protocols import get_protocol
from dcbench.protocols.probe.frozen_fit import FrozenProbeConfig, check_config, fit_settings


def test_weight_decay_candidates_heldout_vs_fixed():
    held = fit_settings(FrozenProbeConfig(lrs=[0.01, 0.02]))
    assert held.candidates == ((0.01, 1e-7), (0.01, 1e-4), (0.02, 1e-7), (0.02, 1e-4))
    fixed = fit_settings(FrozenProbeConfig(weight_decay_selection="fixed"))
    assert fixed.candidates == ((0.01, 1e-7),)  # eval_linear.sh: --lr 0.01 --wd -7
    with pytest.raises(UserError, match="weight_decay_selection"):
        check_config(FrozenProbeConfig(weight_decay_selection="best"))


def test_faithful_2018_linear_conv_uses_the_script_weight_decay():
    cfg = get_protocol("linear-conv").resolve_config(dialect="faithful-2018")
    assert fit_settings(cfg).candidates == ((0.01, 1e-7),)
    assert (cfg.schedule, cfg.epochs, cfg.ten_crop, cfg.pooling) == ("sqrt", 90, True, "dc2018")
