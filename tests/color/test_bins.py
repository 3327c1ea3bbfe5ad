"""Quantised chroma classes (Zhang et al.): centres, soft encoding, annealed mean."""

import torch

from colorize.color.bins import BIN, ab_class_centres, annealed_mean, soft_encode
from colorize.color.gamut import max_chroma_table
from colorize.color.lab import lab_to_rgb


def test_centres_are_the_in_gamut_squares():
    c = ab_class_centres()
    assert c.shape[1] == 2 and 150 < c.shape[0] < 330
    assert torch.all(torch.remainder(c, BIN) == 0)  # on the 10-unit grid
    assert (c == 0).all(1).any()  # neutral is a class
    # every centre is a real sRGB colour at some L; a square past the gamut (pure +a at 110) is not
    reach = max_chroma_table().max(0).values.max()
    assert torch.hypot(c[:, 0], c[:, 1]).max() <= reach
    ok = []
    for a, b in c[:: 7].tolist():
        ls = torch.linspace(1, 99, 99)
        lab = torch.stack((ls, torch.full_like(ls, a), torch.full_like(ls, b)), 1)[:, :, None, None]
        rgb = lab_to_rgb(lab, clip=False)
        ok.append(bool(((rgb >= -1e-3) & (rgb <= 1 + 1e-3)).all(1).any()))
    assert all(ok)


def test_soft_encoding_is_a_distribution_centred_on_the_colour():
    c = ab_class_centres()
    ab = torch.tensor([[12.0, -31.0], [0.0, 0.0], [47.0, 22.0]]).T[None, :, :, None]  # (1, 2, 3, 1)
    t = soft_encode(ab, c)
    assert t.shape == (1, c.shape[0], 3, 1)
    assert torch.allclose(t.sum(1), torch.ones(1, 3, 1))
    assert ((t > 0).sum(1) == 5).all()  # the five nearest squares
    mean = annealed_mean(torch.log(t.clamp_min(1e-12)), c, 1.0)
    assert (mean - ab).abs().max() < 2.0  # T = 1 gives the mean back, to within the grid


def test_annealing_moves_from_the_mean_to_the_mode():
    c = ab_class_centres()
    i_red = int(((c - torch.tensor([40.0, 30.0])).norm(dim=1)).argmin())
    i_grey = int(c.norm(dim=1).argmin())
    logits = torch.full((1, c.shape[0], 1, 1), -30.0)
    logits[0, i_red] = 1.0  # 73 %: red
    logits[0, i_grey] = 0.0  # 27 %: neutral
    m1 = annealed_mean(logits, c, 1.0)[0, :, 0, 0]
    m_cold = annealed_mean(logits, c, 0.1)[0, :, 0, 0]
    assert torch.allclose(m1, 0.731 * c[i_red], atol=0.1)  # the mean: desaturated red
    assert torch.allclose(m_cold, c[i_red], atol=0.01)  # cold: the mode
    chroma = [float(annealed_mean(logits, c, t).norm()) for t in (1.0, 0.7, 0.38, 0.2)]
    assert chroma == sorted(chroma)  # colder is more saturated
