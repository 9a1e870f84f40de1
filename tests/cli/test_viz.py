"""`dcbench viz` argument handling."""

from __future__ import annotations

import pytest

from dcbench.cli.entry import main
from dcbench.cli.parsers.viz import VERBS
from dcbench.cli.viz import parse_channels
from dcbench.core.errors import UserError


def test_parse_channels():
    assert parse_channels("0,3,5-7") == [0, 3, 5, 6, 7]
    assert parse_channels("2, 2,1") == [2, 1]
    for bad in ("", "a", "5-3", "1-x"):
        with pytest.raises(UserError):
            parse_channels(bad)


def test_help_lists_every_verb_with_examples(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["viz", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for verb in VERBS:
        assert verb in text
        assert f"dcbench viz {verb}" in text  # a copy-pastable example per verb


def test_out_must_be_png(tmp_path, capsys):
    assert main(["viz", "curves", str(tmp_path), "--out", str(tmp_path / "c.svg")]) == 2
    assert "--out must end in .png" in capsys.readouterr().err
