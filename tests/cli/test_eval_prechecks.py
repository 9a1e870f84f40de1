"""`Protocol.check_data`: what a protocol would refuse from the data's listings is refused by
`dcbench eval` / `dcbench reproduce` before the plan is printed, the model loaded or a run
dir made (issue 26 point 16): one line, exit 2, nothing written.

The boundaries are checked against the rule applied by hand to the fixture's listing (each
class of `cls_set` lists 7 training files, 6 images + 1 corrupt, and 2 val images)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dcbench.cli.entry import main
from dcbench.core.errors import UserError
from dcbench.data.synthetic import make_classification_set
from dcbench.protocols.base import get_protocol

MODEL = "random-alexnet_small-sobel"
TRAIN_PER_CLASS, CLASSES, VAL = 7, 4, 8  # the listing of cls_set (conftest)


@pytest.fixture(scope="module")
def one_per_class(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One training image per class: nothing can be held out for the probes' selection."""
    return make_classification_set(tmp_path_factory.mktemp("one") / "set", n_classes=3,
                                   train_per_class=1, val_per_class=1, size=32, seed=0)


def _refused(argv: list[str], out: Path, capsys: pytest.CaptureFixture, home: Path) -> str:
    """Run `dcbench ARGV --out OUT`; assert exit 2, one line, nothing printed or written."""
    code = main([*argv, "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 2, captured.err
    assert captured.out == "" and captured.err.count("\n") == 1, captured.err
    assert captured.err.startswith("dcbench: error: ")
    assert not out.exists() and not (home / "runs").exists()
    return captured.err.strip()


def _eval(protocol: str, data: Path, *extra: str) -> list[str]:
    return ["eval", "--protocol", protocol, "--model", MODEL, "--data", str(data),
            "--schedule", "smoke", "--no-store", *extra]


@pytest.mark.parametrize(("protocol", "extra", "message"), [
    ("knn", ["--set", f"k={CLASSES * TRAIN_PER_CLASS + 1}"],
     f"knn k=29 exceeds the {CLASSES * TRAIN_PER_CLASS} training images; choose k <= 28"),
    ("knn-graph", ["--set", "split=val"],  # k=10 neighbours among 8 val images
     "knn-graph with k=10 needs more than 10 images; {data}/val has 8"),
    ("nmi", ["--set", f"k={VAL + 1}"],
     "nmi: k=9 clusters need at least as many images; {data}/val has 8"),
    ("low-shot", ["--set", "shots=[7]"],  # 7 listed - round(0.2 * 7) held out = 6 per class
     "no shot count in [7] fits the training set"),
])
def test_refusals_come_before_the_plan(protocol, extra, message, cls_set, tmp_path, capsys,
                                       isolated_home):
    err = _refused(_eval(protocol, cls_set, *extra), tmp_path / "run", capsys, isolated_home)
    assert message.format(data=cls_set) in err
    # --dry-run too: no plan (and no model timing) before the refusal
    err = _refused(_eval(protocol, cls_set, *extra, "--dry-run"), tmp_path / "dry", capsys,
                   isolated_home)
    assert message.format(data=cls_set) in err


@pytest.mark.parametrize("protocol", ["linear-conv", "mlp"])
def test_probes_without_a_held_out_part_are_refused_first(protocol, one_per_class, tmp_path,
                                                          capsys, isolated_home):
    err = _refused(_eval(protocol, one_per_class, "--fast"), tmp_path / "run", capsys,
                   isolated_home)
    assert "too small to hold out data for selection" in err


def test_voc_lowshot_svm_shots_no_class_can_fill(voc_set, tmp_path, capsys, isolated_home):
    err = _refused(_eval("voc07-lowshot-svm", voc_set, "--layers", "conv5", "--set",
                         "shots=[1000000]"), tmp_path / "run", capsys, isolated_home)
    assert "voc07-lowshot-svm: no k in shots=[1000000] can be drawn" in err


def test_retrieval_without_its_dataset_folders(cls_set, tmp_path, capsys, isolated_home):
    err = _refused(_eval("retrieval", cls_set), tmp_path / "run", capsys, isolated_home)
    assert f"{cls_set} has no oxford5k folder" in err


def test_reproduce_checks_every_planned_eval_before_the_plan(one_per_class, tmp_path, capsys,
                                                             isolated_home):
    out = tmp_path / "plan"
    for extra in ([], ["--dry-run"]):
        code = main(["reproduce", "thesis-5.3", "--model", MODEL, "--data",
                     f"imagenet={one_per_class}", "--schedule", "smoke", "--fast",
                     "--out", str(out), *extra])
        captured = capsys.readouterr()
        assert code == 2 and captured.out == "" and captured.err.count("\n") == 1
        assert "too small to hold out data for selection" in captured.err
        assert not out.exists()


def _check(protocol: str, data: Path, **values) -> None:
    proto = get_protocol(protocol)
    config = proto.resolve_config(schedule="smoke",
                                  overrides=[f"{k}={v}" for k, v in values.items()])
    proto.check_data(data, config)


@pytest.mark.parametrize(("protocol", "key", "largest", "extra"), [
    ("knn", "k", CLASSES * TRAIN_PER_CLASS, {}),  # every listed training file
    ("knn-graph", "k", VAL - 1, {"split": "val"}),  # k neighbours need k + 1 nodes
    ("nmi", "k", VAL, {}),  # one image per cluster at least
])
def test_the_boundary_is_the_rule(protocol, key, largest, extra, cls_set):
    _check(protocol, cls_set, **{key: largest}, **extra)
    with pytest.raises(UserError):
        _check(protocol, cls_set, **{key: largest + 1}, **extra)


def test_low_shot_boundary_is_the_smallest_class_after_the_held_out_split(cls_set):
    pool = TRAIN_PER_CLASS - round(0.2 * TRAIN_PER_CLASS)  # smoke: heldout_fraction 0.2
    _check("low-shot", cls_set, shots=f"[{pool}]")
    _check("low-shot", cls_set, shots=f"[{pool}, {pool + 1}]")  # one feasible n suffices
    with pytest.raises(UserError, match="no shot count"):
        _check("low-shot", cls_set, shots=f"[{pool + 1}]")
