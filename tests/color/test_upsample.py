from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from colorize.color.upsample import ABUpsampler, upsample_ab


def _edge_scene(h=96, w=128, edge=0.43):
    """Full-res L with a vertical edge not on the working grid; ab red left, blue right."""
    x = torch.arange(w).view(1, 1, 1, w).expand(1, 1, h, w)
    left = x < int(w * edge)
    l = torch.where(left, 35.0, 70.0).float()
    ab = torch.stack([torch.where(left, 45.0, -30.0), torch.where(left, 20.0, -40.0)], dim=1).float()[:, :, 0]
    return l, ab


def test_shapes_dtype_and_identity():
    ab = torch.randn(2, 2, 12, 16)
    l = torch.rand(2, 1, 48, 64) * 100
    out = upsample_ab(ab, l)
    assert out.shape == (2, 2, 48, 64) and out.dtype == ab.dtype
    assert upsample_ab(ab, torch.rand(2, 1, 12, 16) * 100) is ab
    assert upsample_ab(ab.half(), l).dtype == torch.float16


def test_constant_chroma_stays_constant():
    ab = torch.tensor([12.0, -7.0]).view(1, 2, 1, 1).expand(1, 2, 10, 14).contiguous()
    l = torch.rand(1, 1, 40, 56) * 100
    out = upsample_ab(ab, l)
    assert torch.allclose(out, ab[:, :, :1, :1].expand_as(out), atol=1e-3)


def test_colour_does_not_bleed_across_luma_edges():
    l, ab_true = _edge_scene()
    ab_low = F.interpolate(ab_true, scale_factor=0.25, mode="area")
    guided = upsample_ab(ab_low, l)
    bilinear = F.interpolate(ab_low, size=l.shape[-2:], mode="bilinear", align_corners=False)
    err_guided = (guided - ab_true).abs().mean()
    err_bilinear = (bilinear - ab_true).abs().mean()
    assert err_guided < 0.4 * err_bilinear, (err_guided, err_bilinear)
    # And right at the edge, each side keeps its own colour.
    col = int(128 * 0.43)
    for c, want in ((col - 1, 45.0), (col, -30.0)):
        assert (guided[0, 0, :, c] - want).abs().mean() < 0.3 * (bilinear[0, 0, :, c] - want).abs().mean()


def test_bad_input_raises():
    with pytest.raises(ValueError):
        upsample_ab(torch.zeros(1, 3, 4, 4), torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError):
        upsample_ab(torch.zeros(1, 2, 4, 4), torch.zeros(2, 1, 8, 8))


def test_gradcheck():
    ab = torch.randn(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    l = (torch.rand(1, 1, 8, 10, dtype=torch.float64) * 100).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, g: upsample_ab(a, g, radius=1), (ab, l))


def test_module_equals_function():
    ab = torch.randn(1, 2, 6, 8)
    l = torch.rand(1, 1, 24, 32) * 100
    assert torch.equal(ABUpsampler(radius=2, eps=1e-2)(ab, l), upsample_ab(ab, l, radius=2, eps=1e-2))


def test_given_low_res_l_matches_computed_one():
    ab = torch.randn(1, 2, 10, 12)
    l = torch.rand(1, 1, 40, 48) * 100
    l_low = F.interpolate(l, size=(10, 12), mode="area")
    assert torch.allclose(upsample_ab(ab, l, l_low=l_low), upsample_ab(ab, l), atol=1e-5)
    with pytest.raises(ValueError):
        upsample_ab(ab, l, l_low=l_low[..., :5])


@pytest.mark.slow
def test_full_hd_frame_is_fast_on_cpu():
    """1920x1080 from a 256x456 working size, one thread: well under 100 ms of CPU time."""
    ab = torch.randn(1, 2, 256, 456)
    l = torch.rand(1, 1, 1080, 1920) * 100
    best = min(_cpu_time(lambda: upsample_ab(ab, l)) for _ in range(5))
    assert best < 0.1, best


def _cpu_time(fn) -> float:
    import time

    start = time.process_time()  # CPU time: fair on a machine shared with other jobs
    fn()
    return time.process_time() - start


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea"])
def test_beats_bilinear_on_real_photographs(name):
    """Colour detail lost at 1/4 size comes back from the full-resolution lightness."""
    from skimage import data

    from colorize.color.lab import rgb_to_lab

    rgb = torch.from_numpy(getattr(data, name)()).permute(2, 0, 1)[None].float() / 255
    lab = rgb_to_lab(rgb)
    l, ab = lab[:, :1], lab[:, 1:]
    ab_low = F.interpolate(ab, scale_factor=0.25, mode="area")
    bilinear = F.interpolate(ab_low, size=l.shape[-2:], mode="bilinear", align_corners=False)
    err_guided = (upsample_ab(ab_low, l) - ab).abs().mean()
    err_bilinear = (bilinear - ab).abs().mean()
    assert err_guided < 0.93 * err_bilinear, (err_guided, err_bilinear)


@pytest.mark.parametrize("radius", [1, 2, 3])
@pytest.mark.parametrize("size", [(1, 1), (2, 3), (5, 4), (17, 30)])
def test_box_mean_is_the_clipped_window_mean(radius, size):
    """The box filter's window sums equal avg_pool2d without the padded pixels, also where the
    window is larger than the picture."""
    from colorize.color.upsample import _box

    x = torch.randn(2, 3, *size, dtype=torch.float64)
    want = F.avg_pool2d(x, 2 * radius + 1, stride=1, padding=radius, count_include_pad=False)
    assert torch.allclose(_box(x, radius), want, atol=1e-12)
