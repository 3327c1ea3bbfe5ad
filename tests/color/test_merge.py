from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.color import rgb2ycbcr

from colorize.color.lab import lab_to_rgb, rgb_to_l, rgb_to_lab
from colorize.color.merge import (
    chroma_planes,
    full_l,
    lab_to_srgb_numpy,
    luma_plane,
    merge_rgb,
    quantize_rgb,
    rgb_to_work_l,
    work_size,
)

RNG = np.random.default_rng(0)


def _to_float(rgb: np.ndarray) -> torch.Tensor:
    top = 255.0 if rgb.dtype == np.uint8 else 65535.0
    return torch.from_numpy(rgb.astype(np.float64) / top).permute(2, 0, 1)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("grey", [False, True])
def test_full_l_matches_lab_module(dtype, grey):
    top = np.iinfo(dtype).max
    rgb = RNG.integers(0, top + 1, (31, 45, 3)).astype(dtype)
    if grey:
        rgb[:] = rgb[:, :, :1]
    l = full_l(rgb)
    assert l.shape == (1, 31, 45) and l.dtype == torch.float32
    ref = rgb_to_l(_to_float(rgb))
    assert torch.allclose(l.double(), ref, atol=2e-3)


def test_work_l_is_area_resampled_full_l():
    rgb = RNG.integers(0, 256, (40, 60, 3)).astype(np.uint8)
    work = rgb_to_work_l(rgb, (20, 30))
    assert work.shape == (1, 20, 30)
    expect = torch.nn.functional.avg_pool2d(full_l(rgb)[None], 2)[0]
    assert torch.allclose(work, expect, atol=1e-4)
    assert rgb_to_work_l(rgb, (40, 60)).shape == (1, 40, 60)


def test_work_size():
    assert work_size(1080, 1920, 256) == (256, 455)
    h, w = work_size(1080, 1920, 256, multiple=16)
    assert h % 16 == 0 and w % 16 == 0 and abs(w / h - 16 / 9) < 0.05
    assert work_size(100, 80, 256) == (100, 80)  # never upscales


def test_numpy_lab_to_rgb_matches_reference():
    lab = np.stack([RNG.uniform(0, 100, (50, 50)), RNG.uniform(-90, 90, (50, 50)), RNG.uniform(-90, 90, (50, 50))])
    lab = lab.astype(np.float32)
    got = np.stack(lab_to_srgb_numpy(*lab))
    ref = lab_to_rgb(torch.from_numpy(lab).double()).numpy()
    assert np.abs(got - ref).max() < 3e-4


def test_merge_round_trip_of_a_colour_picture():
    rgb = RNG.integers(0, 256, (24, 32, 3)).astype(np.uint8)
    lab = rgb_to_lab(_to_float(rgb)).float()
    out = quantize_rgb(merge_rgb(full_l(rgb), lab[1:].permute(1, 2, 0).numpy()), np.uint8)
    assert np.abs(out.astype(int) - rgb).max() <= 1


def test_grey_gives_neutral_chroma():
    l = np.linspace(0, 100, 64 * 48, dtype=np.float32).reshape(48, 64)
    ab = np.zeros((48, 64, 2), np.float32)
    for depth, mid in ((8, 128), (10, 512)):
        for full in (False, True):
            cb, cr = chroma_planes(l, ab, "bt709", full, depth, (24, 32))
            assert cb.shape == (24, 32) and np.all(cb == mid) and np.all(cr == mid)


def test_chroma_matches_skimage_bt601():
    rgb = RNG.integers(0, 256, (20, 30, 3)).astype(np.uint8)
    lab = rgb_to_lab(_to_float(rgb)).float()
    cb, cr = chroma_planes(lab[0].numpy(), lab[1:].permute(1, 2, 0).numpy(), "smpte170m", False, 8, (20, 30))
    ref = rgb2ycbcr(rgb)  # BT.601, limited range
    assert np.abs(cb.astype(float) - ref[:, :, 1]).max() <= 1.0
    assert np.abs(cr.astype(float) - ref[:, :, 2]).max() <= 1.0
    y = luma_plane(rgb, "smpte170m", False, 8)
    assert np.abs(y.astype(float) - ref[:, :, 0]).max() <= 1.0


def test_chroma_is_clipped_to_the_legal_range():
    l = np.full((8, 8), 50, np.float32)
    ab = np.full((8, 8, 2), 500.0, np.float32)
    cb, cr = chroma_planes(l, ab, "bt709", False, 8, (4, 4))
    assert cb.min() >= 16 and cr.max() <= 240


def test_bad_shapes_raise():
    with pytest.raises(ValueError):
        chroma_planes(np.zeros((8, 8), np.float32), np.zeros((4, 4, 2), np.float32), "bt709", False, 8, (4, 4))
    with pytest.raises(ValueError):
        full_l(np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError):
        full_l(np.zeros((8, 8, 3), np.float32))
