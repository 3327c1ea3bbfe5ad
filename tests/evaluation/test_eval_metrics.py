import math

import cv2
import numpy as np
import pytest
import torch

from colorize.evaluation.metrics import (
    PSNR_CAP_DB,
    FlowEstimator,
    ab_histogram,
    color_accuracy,
    hist_distance,
    psnr,
    psnr_from_mse,
    reference_distance,
    valid_flow_mask,
    warp,
    warp_error,
)

G = torch.Generator().manual_seed(0)


def _rgb(h=12, w=16, lo=0.2, hi=0.6):
    return lo + (hi - lo) * torch.rand(2, 3, h, w, generator=G, dtype=torch.float64)


# ---------------------------------------------------------------------------------------- PSNR


def test_psnr_identical_is_capped():
    x = _rgb()
    assert torch.equal(psnr(x, x), torch.full((2,), PSNR_CAP_DB, dtype=torch.float64))
    assert psnr_from_mse(0.0) == PSNR_CAP_DB


@pytest.mark.parametrize("offset", [0.1, 0.01, 0.25])
def test_psnr_constant_offset_is_exact(offset):
    x = _rgb()
    expected = 20 * math.log10(1 / offset)
    assert psnr(x + offset, x).tolist() == pytest.approx([expected] * 2, abs=1e-9)
    assert psnr(x * 255 + offset * 255, x * 255, max_val=255).tolist() == pytest.approx([expected] * 2, abs=1e-9)


def test_psnr_numpy_in_numpy_out_and_shape_mismatch():
    x = _rgb().numpy()
    out = psnr(x + 0.1, x)
    assert isinstance(out, np.ndarray) and out.shape == (2,)
    assert np.allclose(out, 20.0)
    with pytest.raises(ValueError):
        psnr(x, x[..., :-1])
    with pytest.raises(ValueError):
        psnr(x[:, :2], x[:, :2])


# ----------------------------------------------------------------------------------- accuracy


def test_accuracy_known_perturbations():
    ab = 100 * torch.rand(1, 2, 10, 10, generator=G) - 50
    assert float(color_accuracy(ab, ab)[0]) == 1.0
    assert float(color_accuracy(ab + 5.0, ab)[0]) == 1.0  # within 2% of 255 = 5.1
    moved = ab.clone()
    moved[:, 0, :, :4] += 6.0  # a off on 40% of pixels
    assert float(color_accuracy(moved, ab)[0]) == pytest.approx(0.6)
    moved[:, 1, :, 8:] -= 6.0  # b off on another 20%: both must be within
    assert float(color_accuracy(moved, ab)[0]) == pytest.approx(0.4)
    moved[:, 1, :, :2] -= 6.0  # b off where a already is: no change
    assert float(color_accuracy(moved, ab)[0]) == pytest.approx(0.4)
    assert float(color_accuracy(moved, ab, eps=0.03)[0]) == 1.0


# ------------------------------------------------------------------------------------ flicker


def _texture(h=48, w=64, seed=0):
    rng = np.random.default_rng(seed)
    noise = rng.random((h // 4, w // 4)).astype(np.float32)
    return cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)


def test_static_clip_has_zero_warp_error():
    ab = np.stack([_texture(seed=1), _texture(seed=2)]) * 60
    flow = np.zeros((48, 64, 2), np.float32)
    mask = valid_flow_mask(flow, flow)
    assert mask.all()
    assert warp_error(ab, ab, flow, mask) == 0.0


def test_translation_with_exact_flow_has_zero_warp_error():
    dx, dy = 3, -2
    prev = np.stack([_texture(seed=3), _texture(seed=4)]) * 60
    cur = np.roll(prev, shift=(dy, dx), axis=(1, 2))  # content moved by (+3, -2)
    flow_bw = np.zeros((48, 64, 2), np.float32)
    flow_bw[..., 0], flow_bw[..., 1] = -dx, -dy  # pixel x of cur came from x - (dx, dy) in prev
    flow_fw = -flow_bw
    mask = valid_flow_mask(flow_bw, flow_fw)
    # Only the pixels whose source lies outside prev are invalid: 3 columns and 2 rows.
    assert mask.sum() == (64 - dx) * (48 - abs(dy))
    assert warp_error(prev, cur, flow_bw, mask) == pytest.approx(0.0, abs=1e-4)
    # Without the flow the same pair has a large error: the metric is not trivially zero.
    assert warp_error(prev, cur, np.zeros_like(flow_bw), mask) > 1.0


def test_inconsistent_flow_is_masked_as_occluded():
    flow_bw = np.zeros((20, 20, 2), np.float32)
    flow_fw = np.zeros((20, 20, 2), np.float32)
    flow_fw[5:10, 5:10] = (4.0, 0.0)  # forward flow disagrees in one block
    mask = valid_flow_mask(flow_bw, flow_fw)
    assert not mask[5:10, 5:10].any()
    assert mask.sum() == 400 - 25


def test_warp_moves_content_along_flow():
    x = np.zeros((1, 8, 8), np.float32)
    x[0, 2, 3] = 1.0
    flow = np.zeros((8, 8, 2), np.float32)
    flow[..., 0] = 2.0  # out(y, x) = in(y, x + 2)
    assert warp(x, flow)[0, 2, 1] == 1.0


def test_dis_flow_recovers_a_translation():
    base = (_texture(96, 128, seed=5) * 255).astype(np.uint8)
    moved = np.roll(base, shift=(1, 2), axis=(0, 1))
    est = FlowEstimator("fast")
    flow_bw = est(moved, base)
    inner = flow_bw[10:-10, 10:-10]
    assert np.median(inner[..., 0]) == pytest.approx(-2.0, abs=0.25)
    assert np.median(inner[..., 1]) == pytest.approx(-1.0, abs=0.25)
    with pytest.raises(ValueError):
        est(base.astype(np.float32), base)
    with pytest.raises(ValueError):
        FlowEstimator("slowest")


# ---------------------------------------------------------------------------- faithfulness


def test_histogram_distance_known_cases():
    ab = torch.zeros(1, 2, 4, 4)
    ab[:, 0, :, :2] = 40.0
    h = ab_histogram(ab)
    assert h.shape == (32, 32) and h.sum() == 16
    assert hist_distance(h, h) == 0.0
    assert reference_distance(ab, ab) == 0.0
    assert reference_distance(ab, ab + 100.0) == pytest.approx(1.0)  # disjoint palettes
    # Half the pixels shared: Bhattacharyya coefficient sqrt(.5*1) -> distance sqrt(1 - 0.7071).
    assert reference_distance(ab, torch.full((1, 2, 4, 4), 40.0) * torch.tensor([1.0, 0.0]).view(1, 2, 1, 1)) == (
        pytest.approx(math.sqrt(1 - math.sqrt(0.5)))
    )
    with pytest.raises(ValueError):
        ab_histogram(torch.zeros(1, 3, 2, 2))


def test_dark_cast_sum_counts_only_dark_pixels():
    from colorize.evaluation.metrics import dark_cast_sum

    l = torch.tensor([[[[5.0, 9.9, 10.0, 50.0]]]])
    ab = torch.tensor([[[[3.0, 0.0, 30.0, 30.0]], [[4.0, 2.0, 40.0, 40.0]]]])
    total, count = dark_cast_sum(l, ab)
    assert count == 2 and total == pytest.approx(5.0 + 2.0)
    total_np, count_np = dark_cast_sum(l.numpy(), ab.numpy())
    assert (total_np, count_np) == (pytest.approx(total), count)
    assert dark_cast_sum(l + 20, ab) == (0.0, 0)
    with pytest.raises(ValueError):
        dark_cast_sum(l, ab[..., :3])
