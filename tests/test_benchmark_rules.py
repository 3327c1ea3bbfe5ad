"""The arithmetic of scripts in benchmarks/: calibration rules (chroma gain, temperatures) and the
oracle colour corrections of global_colour.py."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from chroma_gain import choose_at_colour  # noqa: E402
from class_temperature import choose  # noqa: E402
from global_colour import corrections  # noqa: E402

# (temperature, gain) -> (PSNR gain, colourfulness ratio), as chroma_gain.py collects them
RESULTS = {
    (1.0, 1.0): (3.26, 0.64),
    (1.0, 1.3): (2.62, 0.83),
    (0.7, 1.2): (2.67, 0.81),
    (0.5, 1.2): (2.42, 0.85),
}


def test_tolerance_rule_takes_the_most_colourful_near_the_best_psnr():
    assert choose(RESULTS, 0.1) == (1.0, 1.0)
    assert choose(RESULTS, 0.7) == (1.0, 1.3)
    assert choose({1.0: (2.0, 0.5), 1.1: (1.95, 0.6), 1.2: (1.5, 0.7)}, 0.1) == 1.1  # plain gains


def test_colour_target_takes_the_best_psnr_that_reaches_it():
    assert choose_at_colour(RESULTS, 0.8) == (0.7, 1.2)
    assert choose_at_colour(RESULTS, 0.84) == (0.5, 1.2)
    assert choose_at_colour(RESULTS, 0.6) == (1.0, 1.0)
    assert choose_at_colour(RESULTS, 0.95) == (0.5, 1.2)  # none reaches it: the most colourful


def test_oracle_corrections_fit_what_they_claim():
    g = torch.Generator().manual_seed(0)
    gt = torch.randn(1, 2, 12, 16, generator=g) * 20
    out = {k: v for k, v in corrections(gt + torch.tensor([5.0, -3.0])[None, :, None, None], gt).items()}
    assert torch.allclose(out["offset"], gt, atol=1e-4)  # a pure cast: the offset removes it
    assert torch.allclose(corrections(gt * 0.5, gt)["gain"], gt, atol=1e-4)  # a pure desaturation
    m = torch.tensor([[0.6, 0.3], [-0.2, 0.9]])
    mixed = torch.einsum("ij,bjhw->bihw", m, gt) + torch.tensor([2.0, 4.0])[None, :, None, None]
    fixed = corrections(mixed, gt)
    assert torch.allclose(fixed["affine"], gt, atol=1e-3)
    assert torch.equal(fixed["output"], mixed)
    assert (fixed["gain"] - gt).pow(2).mean() > (fixed["affine"] - gt).pow(2).mean()
