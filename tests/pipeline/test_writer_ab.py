"""The chroma a writer gets: finish_ab at the output's chroma-plane size where it has one."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from colorize.color.gamut import finish_ab
from colorize.pipeline.render import writer_ab


def _scene(h=96, w=160):
    """Smooth L with a hard edge and a pure-black bar, and ab with a few colour regions."""
    y, x = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    l = 30 + 40 * (x > w * 0.55) + 10 * torch.sin(y / 7)
    l[:, :16] = 0.0  # a pillarbox bar
    ab = torch.stack((40 * torch.cos(x / 20), 30 * torch.sin(y / 15) - 10))
    ab_low = torch.nn.functional.interpolate(ab[None], size=(h // 4, w // 4), mode="area")
    return l[None], ab_low


def test_plane_size_is_the_full_size_finish_averaged_over_each_chroma_sample():
    l, ab = _scene()
    full, l_full = writer_ab(ab, l, 0, None)
    assert full.shape == (1, 96, 160, 2) and np.array_equal(l_full, l[0].numpy())
    plane, l_plane = writer_ab(ab, l, 0, (48, 80))
    assert plane.shape == (1, 48, 80, 2) and l_plane.shape == (48, 80)
    assert np.allclose(l_plane, cv2.resize(l[0].numpy(), (80, 48), interpolation=cv2.INTER_AREA))
    averaged = cv2.resize(full[0], (80, 48), interpolation=cv2.INTER_AREA)
    diff = np.abs(plane[0] - averaged)
    assert diff.mean() < 0.3 and np.percentile(diff, 99) < 3.0, (diff.mean(), diff.max())
    assert np.abs(plane[0]).mean() > 10  # real colour, not a trivially small difference
    assert not plane[0, :, :8].any()  # the bar stays exactly neutral


def test_rotation_and_candidates():
    l, ab = _scene(64, 96)
    two = torch.cat((ab, -ab))
    out, _ = writer_ab(two, l, 0, (32, 48))
    assert out.shape == (2, 32, 48, 2)
    one, _ = writer_ab(ab, l, 0, (32, 48))
    other, _ = writer_ab(-ab, l, 0, (32, 48))
    assert np.allclose(out[0], one[0]) and np.allclose(out[1], other[0])  # each candidate on its own
    turned = torch.rot90(ab, 1, dims=(-2, -1))  # the model saw the picture turned a quarter
    back, _ = writer_ab(turned, l, 1, (32, 48))
    assert np.allclose(back, out[:1], atol=1e-5)
    ref = finish_ab(ab, l[None])[0].permute(1, 2, 0).numpy()
    full, _ = writer_ab(ab, l, 0, None)
    assert np.allclose(full[0], ref)
