"""`core.state_files.read_json_state`: every damaged state file is one line naming it."""

from __future__ import annotations

import pytest

from dcbench.core.errors import MissingFileError, UserError
from dcbench.core.state_files import read_json_state, try_read_json_object


@pytest.mark.parametrize("content, reason", [
    (b'{"table": "eccv', "not valid JSON"),
    (b"[]", "expected a JSON object, got list"),
    (b"\xff\xfe{}", "not UTF-8 text"),
    (b"[" * 100_000, "nested too deeply"),  # json raises RecursionError
    (b'{"run_id": 7}', "'run_id' is int"),
    (b'{"run_id": true}', "'run_id' is bool"),
    (b"{}", "no 'run_id'"),
])
def test_damaged_files_are_one_line_naming_the_file(tmp_path, content, reason):
    path = tmp_path / "run.json"
    path.write_bytes(content)
    with pytest.raises(UserError) as caught:
        read_json_state(path, "run file", keys={"run_id": str}, hint="do X")
    text = str(caught.value)
    assert text == f"run file {path} is damaged ({reason}); do X" or (
        text.startswith(f"run file {path} is damaged ({reason}") and text.endswith("; do X"))
    assert "\n" not in text
    assert try_read_json_object(path) is None or content.startswith(b"{")


def test_a_bom_and_crlf_are_accepted_and_missing_is_its_own_error(tmp_path):
    path = tmp_path / "plan.json"
    path.write_bytes(b'\xef\xbb\xbf{"run_id": "r1"}\r\n')
    assert read_json_state(path, "run file", keys={"run_id": str}) == {"run_id": "r1"}
    with pytest.raises(MissingFileError, match="is missing"):
        read_json_state(tmp_path / "nope.json", "run file")
