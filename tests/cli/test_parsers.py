"""Start-up: `dcbench --help`, every subcommand's `--help` and argument errors answer without
importing torch (the parser modules are light; runners load only after parsing)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dcbench.cli.entry import SUBCOMMANDS
from dcbench.cli.parsers.eval import PROTOCOL_NAMES
from dcbench.cli.parsers.reproduce import DATA_NAME_LIST
from dcbench.leaderboards.reproduce import DATA_NAMES
from dcbench.models.converter_names import CONVERTER_NAMES
from dcbench.models.converters import CONVERTERS, OFFICIAL
from dcbench.protocols.base import list_protocols

#: argument errors, one per subcommand, each refused by argparse or a `check_args`
BAD_ARGS = {
    "train": ["train", "--data", "x"],  # no --recipe / --out
    "eval": ["eval", "--protocol", "linearconv", "--model", "m", "--data", "d"],
    "hub": ["hub", "convert", "a", "b", "--layout", "nope"],
    "leaderboard": ["leaderboard", "show", "--format", "docx"],
    "reproduce": ["reproduce", "--bogus"],
    "viz": ["viz", "filters", "--bogus"],
    "data": ["data", "synth", "--out", "x", "--seed", "-1"],
    "demo": ["demo", "--bogus"],
    "bench": ["bench", "--bogus"],
    "status": ["status"],  # no RUN_DIR
}

#: issue 26: data-name and missing-data errors answer before torch too
DATA_ARGS = [
    ["reproduce", "thesis-5.5", "--model", "m", "--data", "voc"],  # no =ROOT
    ["reproduce", "thesis-5.5", "--model", "m", "--data", "vocc=/"],
    ["reproduce", "thesis-5.5", "--model", "m", "--data", "voc=/no/such/dir"],
    ["reproduce", "thesis-5.5", "--model", "m", "--data", "voc=/", "--data", "voc=/"],
    ["reproduce", "--model", "m"],  # no TABLE
    ["train", "--recipe", "tiny", "--data", "/no/such/dir", "--out", "o"],
    ["eval", "--protocol", "knn", "--model", "m", "--data", "/no/such/dir"],
]

_PROBE = """
import contextlib, io, json, sys
from dcbench.cli.entry import main
codes = []
for argv in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as stop:
            code = stop.code
    codes.append([code, err.getvalue().strip().splitlines()[-1:] ])
heavy = sorted(m for m in ("torch", "torchvision", "pandas", "matplotlib", "sklearn", "faiss")
               if m in sys.modules)
print(json.dumps({"codes": codes, "heavy": heavy}))
"""


def test_every_subcommand_has_a_bad_args_case():
    assert set(BAD_ARGS) == set(SUBCOMMANDS)


def test_help_and_argument_errors_import_no_heavy_library():
    argvs = ([["--help"]] + [[name, "--help"] for name in SUBCOMMANDS] + list(BAD_ARGS.values())
             + DATA_ARGS)
    proc = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(argvs)],
                          capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    helps = 1 + len(SUBCOMMANDS)
    assert [c for c, _ in result["codes"][:helps]] == [0] * helps
    for (code, last), argv in zip(result["codes"][helps:], [*BAD_ARGS.values(), *DATA_ARGS],
                                  strict=True):
        assert code == 2, (argv, last)
        assert last and last[0].startswith("dcbench: error:"), (argv, last)
    assert result["heavy"] == []


def test_import_dcbench_is_light_and_the_facade_still_resolves():
    code = ("import sys, dcbench; light = 'torch' not in sys.modules; "
            "print(light, dcbench.load_model.__module__, dcbench.Backbone.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()
    assert out == ["True", "dcbench.models.factory", "Backbone"]


def test_light_name_lists_match_their_registries():
    assert tuple(sorted(PROTOCOL_NAMES)) == tuple(sorted(list_protocols()))
    assert (OFFICIAL, *CONVERTERS) == CONVERTER_NAMES
    assert tuple(DATA_NAMES) == DATA_NAME_LIST


def test_unknown_protocol_is_refused_with_suggestions(capsys):
    from dcbench.cli.entry import main

    assert main(BAD_ARGS["eval"]) == 2
    assert "Did you mean linear-conv?" in capsys.readouterr().err


@pytest.mark.parametrize("attr", ["nope", "_LAZY_missing"])
def test_facade_unknown_attribute_is_an_attribute_error(attr):
    import dcbench

    with pytest.raises(AttributeError):
        getattr(dcbench, attr)
