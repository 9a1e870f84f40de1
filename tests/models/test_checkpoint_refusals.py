"""Every refused checkpoint is one line: the unsafe global named, garbage called garbage."""

from __future__ import annotations

import argparse
import os
import pickle
from pathlib import Path

import pytest
import torch

from dcbench.core.errors import UserError
from dcbench.models.checkpoints import read_checkpoint

MARKER = Path(os.environ.get("TMPDIR", "/tmp")) / "dcbench-pwned-marker"


class Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


def hostile_checkpoints(folder: Path) -> dict[str, Path]:
    """The corpus: exploit pickles in every container, garbage, empty, cut, odd globals."""
    out = {}
    payload = {"state_dict": {}, "x": Exploit()}
    out["zip"] = folder / "zip.pth"
    torch.save(payload, out["zip"])
    out["legacy"] = folder / "legacy.pth"
    torch.save(payload, out["legacy"], _use_new_zipfile_serialization=False)
    out["pickle4"] = folder / "plain.pth"
    out["pickle4"].write_bytes(pickle.dumps(payload, protocol=4))
    out["pickle2"] = folder / "plain2.pth"
    out["pickle2"].write_bytes(pickle.dumps(payload, protocol=2))
    out["namespace"] = folder / "ns.pth"
    torch.save({"args": argparse.Namespace(lr=0.1)}, out["namespace"])
    out["random"] = folder / "random.pth"
    out["random"].write_bytes(bytes(range(7, 256)) * 20 + os.urandom(5000 - 4980))
    out["zero"] = folder / "zero.pth"
    out["zero"].write_bytes(b"")
    good = folder / "good.pth"
    torch.save({"w": torch.zeros(3)}, good)
    out["cut"] = folder / "cut.pth"
    out["cut"].write_bytes(good.read_bytes()[:300])
    return out


EXPECT = {"zip": "posix.system", "legacy": "posix.system", "pickle4": "posix.system",
          "pickle2": "posix.system", "namespace": "argparse.Namespace",
          "random": "not a PyTorch checkpoint", "zero": "empty (0 bytes)",
          "cut": "not a PyTorch checkpoint"}


@pytest.mark.parametrize("case", sorted(EXPECT))
def test_refusal_is_one_line_and_names_the_reason(tmp_path: Path, case: str) -> None:
    MARKER.unlink(missing_ok=True)
    path = hostile_checkpoints(tmp_path)[case]
    with pytest.raises(UserError) as err:
        read_checkpoint(path)
    message = str(err.value)
    assert EXPECT[case] in message
    assert err.value.detail is None and "\n" not in message
    assert "weights_only" not in message and "Re-running" not in message
    assert not MARKER.exists()


def test_state_dict_still_loads(tmp_path: Path) -> None:
    torch.save({"w": torch.ones(2)}, tmp_path / "ok.pth")
    assert torch.equal(read_checkpoint(tmp_path / "ok.pth")["w"], torch.ones(2))
