"""The `dcbench` command: subcommands, help with examples, `python -m dcbench`, exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dcbench.cli.entry import SUBCOMMANDS, main


def test_top_level_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in ("train", "eval", "hub", "leaderboard", "viz", "data", "demo", "bench"):
        assert name in out
    assert set(SUBCOMMANDS) == {"train", "eval", "hub", "leaderboard", "viz", "data", "demo",
                                "bench"}


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_each_subcommand_has_help_with_examples(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"dcbench {name}" in out


def test_python_dash_m_works():
    done = subprocess.run([sys.executable, "-m", "dcbench", "hub", "list", "deepcluster-*"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "deepcluster-alexnet" in done.stdout and "deepcluster-vgg16" in done.stdout


def test_bad_input_exits_2_with_one_clear_line(capsys, tmp_path):
    assert main(["eval", "--protocol", "linear-cnv", "--model", "random-alexnet_small-sobel",
                 "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("dcbench: error:") and "linear-conv" in err[0]
