"""The same weights and metadata give the same bytes, across processes (issue 14, item 7)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from safetensors.torch import load_file

from dcbench.models import create_backbone
from dcbench.models.checkpoints import canonical_safetensors, save_hub_dir

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import sys
from dcbench.models import create_backbone
from dcbench.models.checkpoints import save_hub_dir
model = create_backbone({"arch": "alexnet_small", "sobel": True}, seed=0)
save_hub_dir(model, sys.argv[1], metadata={"zeta": "1", "alpha": "2", "mid": "3", "b": "4"})
"""


def test_hub_weights_are_byte_identical_across_processes(tmp_path: Path) -> None:
    """One file written here, one in a fresh process (a new Rust HashMap seed)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "there")], check=True,
                   env=env, timeout=120)
    model = create_backbone({"arch": "alexnet_small", "sobel": True}, seed=0)
    save_hub_dir(model, tmp_path / "here", metadata={"zeta": "1", "alpha": "2", "mid": "3",
                                                     "b": "4"})
    digests = {hashlib.sha256((tmp_path / where / "model.safetensors").read_bytes()).hexdigest()
               for where in ("here", "there")}
    assert len(digests) == 1


def test_canonical_header_keeps_tensors_and_sorts_metadata(tmp_path: Path) -> None:
    model = create_backbone({"arch": "alexnet_small"}, seed=1)
    folder = save_hub_dir(model, tmp_path / "m", metadata={"z": "1", "a": "2"})
    path = folder / "model.safetensors"
    before = path.read_bytes()
    canonical_safetensors(path)  # idempotent
    assert path.read_bytes() == before
    size = int.from_bytes(before[:8], "little")
    header = before[8:8 + size].decode()
    assert size % 8 == 0 and header.index('"a"') < header.index('"dcbench_version"') \
        < header.index('"format"') < header.index('"z"')
    tensors = load_file(str(path))
    for key, value in model.state_dict().items():
        assert (tensors[key] == value).all(), key
