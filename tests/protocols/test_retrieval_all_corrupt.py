"""retrieval with every database image undecodable: one clear error (issue 19), not a
`torch.stack` traceback."""

from __future__ import annotations

import pytest

from dcbench.core.errors import UserError
from dcbench.data.synthetic_retrieval import write_retrieval_set
from dcbench.models import create_backbone
from dcbench.protocols import get_protocol


def test_every_database_image_corrupt_is_a_user_error(tmp_path) -> None:
    root = write_retrieval_set(tmp_path / "set", landmarks=1, per_landmark=2,
                               queries_per_landmark=1, distractors=1, size=48)
    broken = sorted((root / "oxford5k" / "jpg").rglob("*.jpg"))
    for path in broken:
        path.write_bytes(b"\xff\xd8\xff not a jpeg at all")
    protocol = get_protocol("retrieval")
    config = protocol.resolve_config(schedule="smoke", overrides=["datasets=[oxford5k]",
                                                                   "pca_source=self"])
    model = create_backbone({"arch": "alexnet_small", "sobel": True}, seed=0)
    with pytest.raises(UserError, match=f"none of the {len(broken)} database images of "
                                        "oxford5k") as err:
        protocol.run(model, root, config, run_id="t", device="cpu", progress=False,
                     work_dir=tmp_path / "work")
    assert "\n" not in str(err.value)
