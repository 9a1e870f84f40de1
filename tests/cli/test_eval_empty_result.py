"""An evaluation that measures nothing is an error, never exit 0 with 0 rows (issue 19)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dcbench.cli.entry import main
from dcbench.data.synthetic import make_voc_set
from dcbench.protocols.knn import KNN


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_voc_set(tmp_path_factory.mktemp("voc"), n_train=4, n_val=4, n_test=4,
                        size=64, seed=0)


def test_lowshot_svm_with_no_drawable_k_exits_2(voc_root: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    code = main(["eval", "--protocol", "voc07-lowshot-svm", "--model", "arch:alexnet_small",
                 "--data", str(voc_root), "--schedule", "smoke", "--set", "shots=[1000000]",
                 "--set", "layers=[conv5]", "--out", str(tmp_path / "run"), "--no-store"])
    err = capsys.readouterr().err
    assert code == 2 and "no k in shots=[1000000] can be drawn" in err, err


def test_a_protocol_returning_no_rows_exits_2(tmp_path: Path, cls_set: Path,
                                              capsys: pytest.CaptureFixture,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(KNN, "run", lambda self, *args, **kwargs: [])
    code = main(["eval", "--protocol", "knn", "--model", "arch:alexnet_small", "--data",
                 str(cls_set), "--schedule", "smoke", "--out", str(tmp_path / "run"),
                 "--no-store"])
    err = capsys.readouterr().err
    assert code == 2 and "knn produced no result rows" in err, err
    assert not (tmp_path / "run" / "results.json").exists()
