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
    for name in ("train", "eval", "hub", "leaderboard", "reproduce", "viz", "data", "demo",
                 "bench", "status"):
        assert name in out
    assert set(SUBCOMMANDS) == {"train", "eval", "hub", "leaderboard", "reproduce", "viz",
                                "data", "demo", "bench", "status"}


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


def _help(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines


@pytest.mark.parametrize(("argv", "shown"), [
    (["viz", "gradient-ascent"], ["--iters ITERS", "(default: 300)", "(default: conv3)"]),
    (["viz", "neighbors"], ["(default: 3)", "(default: 64)"]),
    (["data", "synth"], ["(default: 64)", "(default: all)", "(default: 0)"]),
    (["demo"], ["(default: dcbench-demo)", "(default: 0)"]),
    (["leaderboard", "show"], ["(default: md)"]),
    (["hub", "info"], ["catalog name (see `dcbench hub list`)"]),
    (["hub", "convert"], ["released checkpoint file to convert", "new hub folder"]),
])
def test_help_shows_every_default_and_positional(argv, shown, capsys):
    text = _help(argv, capsys)
    for piece in shown:
        assert piece in text, (argv, piece)


def test_neighbours_spelling_and_no_progress_are_accepted(capsys):
    text = _help(["viz", "neighbours"], capsys)
    assert "nearest neighbours" in text
    assert "--progress, --no-progress" in _help(["train"], capsys)
    assert "--batch-size" in _help(["eval"], capsys) and "--workers" in _help(["eval"], capsys)


def test_interrupt_message_names_the_commands_that_resume(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr("dcbench.cli.data.run", interrupted)
    assert main(["data", "check", "--data", ".", "--format", "imagenet"]) == 130
    err = capsys.readouterr().err
    assert "train, eval and demo" in err and "--resume" in err


def test_unrecognized_arguments_name_dcbench_once(capsys):
    assert main(["viz", "filters", "--model", "m", "--out", "f.png", "--nope", "1"]) == 2
    line = capsys.readouterr().err.splitlines()[0]
    assert line.startswith("dcbench: error: unrecognized arguments: --nope 1")
    assert line.count("dcbench:") == 1
