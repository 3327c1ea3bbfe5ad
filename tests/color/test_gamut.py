"""Gamut-aware chroma: neutral where sRGB has no room, monotone, never more chroma."""

import math

import pytest
import torch

from colorize.color.gamut import ChromaLimiter, finish_ab, limit_chroma, max_chroma, max_chroma_table
from colorize.color.lab import lab_to_rgb


def _planes(l_values, ab):
    l = torch.tensor(l_values, dtype=torch.float64).view(1, 1, 1, -1)
    a = torch.as_tensor(ab, dtype=torch.float64).view(1, 2, 1, 1).expand(1, 2, 1, l.shape[-1]).clone()
    return l, a


def test_pure_black_and_white_become_exactly_neutral():
    gen = torch.Generator().manual_seed(0)
    ab = torch.randn(3, 2, 8, 8, generator=gen) * 60
    for value in (0.0, 100.0):
        l = torch.full((3, 1, 8, 8), value)
        out = limit_chroma(l, ab)
        assert torch.equal(out, torch.zeros_like(out))


def test_table_is_the_srgb_boundary():
    table = max_chroma_table()
    assert table.shape[1] == 181 and torch.equal(table[:, 0], table[:, -1])
    assert table[0].abs().max() == 0 and table[-1].abs().max() == 0
    # Mid grey has room for a lot of colour; near black far less.
    assert table[50].min() > 20 and table[1].max() < 20 and table[1].mean() < table[50].mean() / 10
    # Every tabulated chroma is inside sRGB (linear channels in [0, 1]) and 1 % more is not.
    l = torch.linspace(0, 100, table.shape[0], dtype=torch.float64)[:, None].expand(-1, 180)
    hue = torch.arange(180, dtype=torch.float64) * (2 * math.pi / 180)
    c = table[:, :180]
    for scale, inside in ((1.0, True), (1.01, False)):
        lab = torch.stack((l, c * scale * torch.cos(hue), c * scale * torch.sin(hue)))[None]
        rgb = lab_to_rgb(lab, clip=False)
        ok = ((rgb > -1e-4) & (rgb < 1 + 1e-4)).all(1)[0][1:-1]  # rows 0 and 100 have c = 0
        assert bool(ok.all()) if inside else float(ok.float().mean()) < 0.05


def test_never_raises_chroma_and_keeps_hue():
    gen = torch.Generator().manual_seed(1)
    l = torch.rand(2, 1, 16, 16, generator=gen, dtype=torch.float64) * 100
    ab = torch.randn(2, 2, 16, 16, generator=gen, dtype=torch.float64) * 50
    out = limit_chroma(l, ab)
    c_in, c_out = ab.norm(dim=1), out.norm(dim=1)
    assert (c_out <= c_in + 1e-9).all()
    cross = ab[:, 0] * out[:, 1] - ab[:, 1] * out[:, 0]  # parallel vectors: zero cross product
    dot = (ab * out).sum(1)
    assert cross.abs().max() < 1e-6 and (dot >= 0).all()


def test_monotone_in_chroma_and_untouched_inside_the_knee():
    l, _ = _planes([40.0] * 200, [0, 0])
    c = torch.linspace(0, 150, 200, dtype=torch.float64)
    hue = 2.0
    ab = torch.stack((c * math.cos(hue), c * math.sin(hue))).view(1, 2, 1, 200)
    out = limit_chroma(l, ab).norm(dim=1)[0, 0]
    assert (out[1:] - out[:-1] >= -1e-9).all()
    limit = max_chroma(l, ab)[0, 0, 0, -1]  # the hue of every non-zero pixel
    small = c < 0.8 * limit
    assert torch.allclose(out[small], c[small])
    assert out.max() <= limit + 1e-9


def test_dark_pixels_lose_their_cast_and_pillarbox_bars_stay_black():
    # A navy prediction over a pillarbox bar (L 0..0.3) and a deep shadow.
    l, ab = _planes([0.0, 0.27, 2.0, 5.0, 60.0], [10.0, -40.0])
    out = limit_chroma(l, ab)
    rgb = (lab_to_rgb(torch.cat((l, out), 1)) * 255).round()[0, :, 0]
    assert torch.equal(rgb[:, 0], torch.zeros(3, dtype=rgb.dtype))
    assert (rgb[:, 1].max() - rgb[:, 1].min()) == 0  # the bar's level stays neutral
    assert out[0, :, 0, 3].norm() < 1.5
    assert torch.allclose(out[0, :, 0, 4], ab[0, :, 0, 4])  # mid tones keep their colour


def test_gradient_flows_and_module_matches_function():
    l = torch.rand(1, 1, 8, 8, dtype=torch.float64) * 100
    ab = (torch.randn(1, 2, 8, 8, dtype=torch.float64) * 40).requires_grad_()
    out = limit_chroma(l, ab)
    out.sum().backward()
    assert torch.isfinite(ab.grad).all() and ab.grad.abs().sum() > 0
    assert torch.equal(ChromaLimiter()(l, ab), out)
    assert limit_chroma(l.float(), ab.detach().float()).dtype == torch.float32


def test_bad_shapes_raise():
    with pytest.raises(ValueError):
        limit_chroma(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4))
    with pytest.raises(ValueError):
        limit_chroma(torch.zeros(1, 1, 4, 4), torch.zeros(1, 2, 4, 5))
    with pytest.raises(ValueError):
        limit_chroma(torch.zeros(1, 1, 4, 4), torch.zeros(1, 2, 4, 4), knee=1.0)


def test_finish_ab_upsamples_then_limits():
    l_full = torch.zeros(1, 1, 32, 32)
    l_full[..., 8:24] = 60.0  # a picture between two black bars
    ab = torch.full((1, 2, 8, 8), 30.0)
    out = finish_ab(ab, l_full)
    assert out.shape == (1, 2, 32, 32)
    assert out[..., :8].abs().max() == 0 and out[..., 24:].abs().max() == 0
    assert torch.allclose(out[..., 12:20], torch.full_like(out[..., 12:20], 30.0), atol=1e-3)


def test_the_pipeline_reaches_pictures_only_through_finish_ab():
    """Every path from a model's chroma to a picture applies the gamut limit: no module outside
    colorize.color upsamples ab on its own."""
    from pathlib import Path

    import colorize

    root = Path(colorize.__file__).parent
    offenders = [str(p.relative_to(root)) for p in root.rglob("*.py")
                 if p.parent.name != "color" and "upsample_ab" in p.read_text()]
    assert offenders == []


def test_dark_ramp_closes_chroma_in_deep_shadows_only():
    l = torch.tensor([6.9, 9.5, 12.0, 30.0]).view(1, 1, 1, 4)
    ab = torch.tensor([20.0, 20.0]).view(1, 2, 1, 1).expand(1, 2, 1, 4)
    c = limit_chroma(l, ab).norm(dim=1)[0, 0]
    assert c[0] == 0 and 0 < c[1] < c[2] and torch.allclose(c[3], ab[0, :, 0, 3].norm())
    with pytest.raises(ValueError):
        limit_chroma(l, ab, dark=(12.0, 7.0))
    assert limit_chroma(l, ab, dark=None)[0, :, 0, 0].norm() > 5  # only the sRGB limit there


def test_lookup_matches_the_table_at_every_hue_and_lightness():
    """max_chroma reads the table through its hue -180..180 copy: the same limit as interpolating
    the 0..360 table directly, for every quadrant, the hue wrap-around, L outside [0, 100] and
    zero chroma."""
    gen = torch.Generator().manual_seed(7)
    l = torch.cat((torch.rand(4000, generator=gen, dtype=torch.float64) * 120 - 10,
                   torch.tensor([0.0, 100.0, -5.0, 105.0, 50.0, 50.0, 50.0], dtype=torch.float64)))
    hue = torch.cat((torch.rand(4000, generator=gen, dtype=torch.float64) * 2 * math.pi,
                     torch.tensor([0.0, 1.0, 2.0, 3.0, math.pi, 2 * math.pi - 1e-9, 0.0], dtype=torch.float64)))
    c = torch.rand(l.shape[0], generator=gen, dtype=torch.float64) * 90 + 1
    c[-1] = 0.0  # no hue at all
    ab = torch.stack((c * torch.cos(hue), c * torch.sin(hue))).view(1, 2, 1, -1)
    got = max_chroma(l.view(1, 1, 1, -1), ab, dark=None)[0, 0, 0]
    table = max_chroma_table()
    x = (torch.atan2(ab[0, 1, 0], ab[0, 0, 0]) % (2 * math.pi)) / (2 * math.pi) * (table.shape[1] - 1)
    y = l.clamp(0, 100) / 100 * (table.shape[0] - 1)
    x0, y0 = x.floor().long().clamp(max=table.shape[1] - 2), y.floor().long().clamp(max=table.shape[0] - 2)
    fx, fy = x - x0, y - y0
    want = ((1 - fy) * ((1 - fx) * table[y0, x0] + fx * table[y0, x0 + 1])
            + fy * ((1 - fx) * table[y0 + 1, x0] + fx * table[y0 + 1, x0 + 1]))
    assert torch.allclose(got, want, atol=1e-9), (got - want).abs().max()
