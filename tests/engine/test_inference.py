"""The one inference loop: outputs per decodable batch, bad files reported, eval mode kept."""

from __future__ import annotations

import torch
from torch import nn

from dcbench.data.folders import ImageFolderDataset
from dcbench.data.loader import DecodeReport, make_loader
from dcbench.data.transforms import center_crop
from dcbench.engine.inference import eval_mode, inference_batches


def test_outputs_match_a_plain_forward_and_bad_files_are_reported(cls_set):
    dataset = ImageFolderDataset(cls_set / "train", center_crop(32, 32, [0.5] * 3, [0.25] * 3))
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    report, done = DecodeReport(), []
    outs, seen = [], []
    for batch, out in inference_batches(make_loader(dataset, 5), net, dataset=dataset,
                                        report=report, progress=done.append):
        assert not out.requires_grad
        outs.append(out)
        seen.extend(batch.indices.tolist())
    good = [i for i in range(len(dataset)) if dataset[i][0] is not None]
    assert seen == good and report.count == len(dataset) - len(good) > 0
    assert sum(done) == len(dataset)
    plain = torch.stack([net(dataset[i][0][None])[0] for i in good]).detach()
    torch.testing.assert_close(torch.cat(outs), plain)


def test_eval_mode_restores_the_previous_mode():
    net = nn.Dropout()
    with eval_mode(net):
        assert not net.training
    assert net.training
