"""The detector's box conventions (VOC inclusive pixels vs torchvision continuous boxes)."""

from __future__ import annotations

import numpy as np
import pytest

from dcbench.protocols.voc.detector import continuous_to_voc, voc_to_continuous
from dcbench.protocols.voc.metrics import voc_iou


def test_box_conventions_round_trip_with_devkit_widths():
    voc = np.array([[3, 5, 12, 20]], float)
    cont = voc_to_continuous(voc)
    np.testing.assert_allclose(cont, [[2, 4, 12, 20]])  # 10 px wide: pixels 3..12
    assert cont[0, 2] - cont[0, 0] == voc[0, 2] - voc[0, 0] + 1
    np.testing.assert_allclose(continuous_to_voc(cont), voc)
    assert voc_iou(continuous_to_voc(cont)[0], voc)[0] == pytest.approx(1.0)
