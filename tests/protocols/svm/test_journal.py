"""The SVM resume journal: records survive, torn lines and other configs are ignored."""

from __future__ import annotations

from dcbench.protocols.svm.journal import Journal


def test_round_trip_torn_line_and_foreign_config(tmp_path):
    journal = Journal(tmp_path, "svm", "hash-a")
    journal.record("conv5/0", {"cost": 1.0})
    journal.record("conv5/1", [1, 2])
    Journal(tmp_path, "svm", "hash-b").record("conv5/2", 3)
    with open(tmp_path / "svm.jsonl", "a") as handle:
        handle.write('{"key": "conv5/3", "val')  # a crash mid-write
    again = Journal(tmp_path, "svm", "hash-a")
    assert again.get("conv5/0") == {"cost": 1.0} and again.get("conv5/1") == [1, 2]
    assert again.get("conv5/2") is None and again.get("conv5/3") is None


def test_without_work_dir_only_memory():
    journal = Journal(None, "svm", "h")
    journal.record("k", 1)
    assert journal.get("k") == 1 and journal.path is None
