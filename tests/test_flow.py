"""Flow utilities: warping, occlusion masks, DIS wrapper, confidence maps."""

import numpy as np
import pytest
import torch

from colorize.flow import (
    confidence_map,
    dis_flow,
    dis_flow_pair,
    inside_mask,
    l_to_uint8,
    occlusion_mask,
    warp,
)


def _smooth(h=24, w=32, c=3, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, c, h // 4, w // 4, generator=g, dtype=dtype)
    return torch.nn.functional.interpolate(x, size=(h, w), mode="bicubic", align_corners=False)


def _textured_grey(h=96, w=128, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    import cv2

    noise = rng.uniform(0, 255, (h // 4, w // 4)).astype(np.float32)
    return cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 255).astype(np.uint8)


def test_zero_flow_is_identity():
    img = _smooth()
    assert torch.allclose(warp(img, torch.zeros(1, 2, 24, 32)), img, atol=1e-6)


@pytest.mark.parametrize("dx,dy", [(3, 0), (0, -2), (2, 1)])
def test_warp_with_exact_flow_recovers_a_translated_image(dx, dy):
    img = _smooth(seed=1)
    # frame t is the image moved by (dx, dy): frame_t(x + dx, y + dy) = img(x, y)
    frame_t = torch.roll(img, shifts=(dy, dx), dims=(-2, -1))
    flow = torch.zeros(1, 2, 24, 32)
    flow[:, 0], flow[:, 1] = dx, dy
    back = warp(frame_t, flow)
    mask = inside_mask(flow).bool().expand_as(img)
    assert torch.allclose(back[mask], img[mask], atol=1e-5)
    assert mask.float().mean() < 1 or (dx, dy) == (0, 0)


def test_subpixel_warp_interpolates_linearly():
    ramp = torch.arange(10, dtype=torch.float64).view(1, 1, 1, 10).expand(1, 1, 4, 10).contiguous()
    flow = torch.zeros(1, 2, 4, 10, dtype=torch.float64)
    flow[:, 0] = 0.25
    out = warp(ramp, flow)
    assert torch.allclose(out[..., :-1], ramp[..., :-1] + 0.25)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_warp_samples_in_float32(dtype):
    """Half-precision inputs are warped with float32 coordinates and returned in their own dtype."""
    img = _smooth(h=48, w=640, seed=2)
    flow = torch.rand(1, 2, 48, 640) * 6 - 3
    full = warp(img, flow)
    half = warp(img.to(dtype), flow.to(dtype))
    assert half.dtype == dtype and torch.isfinite(half).all()
    assert (half.float() - warp(img.to(dtype).float(), flow.to(dtype).float())).abs().max() < 1e-2
    assert (half.float() - full).abs().mean() < 1e-2
    mask = occlusion_mask(flow.to(dtype), (-flow).to(dtype))
    assert mask.dtype == dtype and set(mask.unique().tolist()) <= {0.0, 1.0}


def test_warp_gradcheck():
    img = torch.rand(1, 1, 5, 6, dtype=torch.float64, requires_grad=True)
    flow = (torch.rand(1, 2, 5, 6, dtype=torch.float64) * 0.6 + 0.2).requires_grad_()
    assert torch.autograd.gradcheck(warp, (img, flow))


def test_warp_rejects_bad_shapes():
    with pytest.raises(ValueError):
        warp(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError):
        warp(torch.zeros(1, 3, 8, 8), torch.zeros(1, 2, 8, 9))


def test_occlusion_mask_keeps_consistent_and_drops_inconsistent_flow():
    fwd = torch.zeros(1, 2, 16, 20)
    fwd[:, 0] = 2.0
    bwd = -fwd
    mask = occlusion_mask(fwd, bwd)
    assert mask[..., :, :-2].eq(1).all()  # consistent and inside
    assert mask[..., :, -2:].eq(0).all()  # points outside frame t
    bad = occlusion_mask(fwd, torch.zeros_like(fwd))  # t does not come back: occluded
    assert bad.sum() == 0


def test_dis_flow_follows_the_warp_convention():
    grey_s = _textured_grey()
    grey_t = np.roll(grey_s, shift=(2, 3), axis=(0, 1))  # content moves by (+3, +2)
    flow = dis_flow(grey_s, grey_t, preset="medium")
    inner = flow[10:-10, 10:-10]
    assert abs(np.median(inner[..., 0]) - 3) < 0.5 and abs(np.median(inner[..., 1]) - 2) < 0.5
    f_st, f_ts, m_s, m_t = dis_flow_pair(grey_s, grey_t, preset="medium")
    assert f_st.shape == (1, 2, 96, 128) and m_s.shape == (1, 1, 96, 128)
    assert m_s[..., 10:-10, 10:-10].mean() > 0.9 and m_t[..., 10:-10, 10:-10].mean() > 0.9
    s = torch.from_numpy(grey_s).float()[None, None]
    t = torch.from_numpy(grey_t).float()[None, None]
    err = (warp(t, f_st) - s).abs()[..., 10:-10, 10:-10].mean()
    assert err < 3.0


def test_dis_flow_rejects_bad_inputs():
    with pytest.raises(ValueError, match="uint8"):
        dis_flow(np.zeros((8, 8), np.float32), np.zeros((8, 8), np.float32))
    with pytest.raises(ValueError, match="size"):
        dis_flow(np.zeros((8, 8), np.uint8), np.zeros((8, 9), np.uint8))


def test_l_to_uint8_scales_lightness():
    l = torch.tensor([[[0.0, 50.0, 100.0, 120.0]]])
    assert l_to_uint8(l).tolist() == [[0, 128, 255, 255]]


def test_confidence_map_matches_equation_4():
    a = torch.zeros(1, 2, 4, 4)
    b = torch.zeros(1, 2, 4, 4)
    b[..., 0, 0] = 0.02  # mean |diff| = 0.02 -> 1 - 15 * 0.02 = 0.7
    b[..., 1, 1] = 1.0  # far off -> 0
    mask = torch.ones(1, 1, 4, 4)
    mask[..., 3, 3] = 0
    w = confidence_map(a, b, mask, alpha=15.0)
    assert w.shape == (1, 1, 4, 4)
    assert torch.isclose(w[0, 0, 0, 0], torch.tensor(0.7))
    assert w[0, 0, 1, 1] == 0 and w[0, 0, 3, 3] == 0 and w[0, 0, 2, 2] == 1
