"""viz numbers are checked before any work (issue 19): a NaN step size, channels beyond the
layer and negative query indices are one line with their own message, exit 2."""

from __future__ import annotations

import re
import time

import pytest

from dcbench.cli.entry import main
from dcbench.cli.viz import parse_channels
from dcbench.core.errors import UserError

MODEL = "arch:alexnet_small"


@pytest.mark.parametrize("text", ["-5", "3,-1", "-2-4"])
def test_negative_query_indices_are_called_query_indices(text: str) -> None:
    with pytest.raises(UserError, match="bad query index list") as err:
        parse_channels(text, "query index")
    assert "channel" not in str(err.value)


def test_a_huge_range_is_refused_without_building_it() -> None:
    with pytest.raises(UserError, match="bad channel list"):
        parse_channels("0-1000000000000")


@pytest.mark.parametrize("lr", ["nan", "inf", "0", "-1"])
def test_ascent_lr_must_be_a_positive_finite_number(tmp_path, capsys, lr: str) -> None:
    code = main(["viz", "gradient-ascent", "--model", MODEL, "--layer", "conv1",
                 "--lr", lr, "--out", str(tmp_path / "a.png")])
    err = capsys.readouterr().err
    assert code == 2 and "--lr" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "a.png").exists()


def test_ascent_channels_beyond_the_layer_fail_before_the_first_step(tmp_path, capsys) -> None:
    t0 = time.perf_counter()
    code = main(["viz", "gradient-ascent", "--model", MODEL, "--layer", "conv1",
                 "--channels", "0-100000", "--iters", "1000", "--out", str(tmp_path / "a.png")])
    err = capsys.readouterr().err
    found = re.search(r"channel (\d+) out of range: conv1 has channels 0\.\.(\d+)", err)
    assert code == 2 and found and int(found[1]) == int(found[2]) + 1, err
    assert "gradient ascent:" not in err  # the run never started
    assert time.perf_counter() - t0 < 5
