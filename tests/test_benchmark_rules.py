"""The arithmetic of scripts in benchmarks/: calibration rules (chroma gain, temperatures) and the
oracle colour corrections of global_colour.py."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from chroma_gain import choose_at_colour  # noqa: E402
from class_temperature import choose  # noqa: E402
from compare_at_colour import at_colour, paired_interval, source_of  # noqa: E402
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


def test_at_colour_reads_every_clip_off_the_line_between_the_gains_that_bracket_the_target():
    # {gain: (set colour, [per-clip PSNR gain])}; the set colour 0.8 lies a quarter of the way from 1.1 to 1.2
    results = {1.0: (0.70, [3.0, 2.0]), 1.1: (0.76, [2.8, 1.6]), 1.2: (0.92, [2.0, 1.2])}
    gain, psnr, inside = at_colour(results, 0.80)
    assert inside and abs(gain - 1.125) < 1e-9
    assert [round(x, 6) for x in psnr] == [2.6, 1.5]
    # beyond the measured colours: the nearest two gains' line, flagged as extrapolated
    gain, psnr, inside = at_colour(results, 1.0)
    assert not inside and gain > 1.2 and psnr[0] < 2.0
    with pytest.raises(ValueError):
        at_colour({1.0: (0.7, [1.0])}, 0.7)


def test_source_of_joins_the_parts_of_one_video():
    assert source_of("liveportrait_d10_part3.mp4") == source_of("liveportrait_d10_part1.mp4") == "liveportrait_d10"
    assert source_of("davis_goat.mp4") == "davis_goat"


def test_paired_interval_resamples_source_videos_and_straddles_zero_only_when_the_clips_disagree():
    same_sign = [0.3, 0.4, 0.2, 0.35, 0.25]
    mean, lo, hi = paired_interval(same_sign, list("abcde"), boot=2000)
    assert abs(mean - 0.3) < 1e-9 and 0.2 <= lo < mean < hi <= 0.4
    mixed = [1.5, -1.2, 0.3, -0.4, 0.1]
    mean, lo, hi = paired_interval(mixed, list("abcde"), boot=2000)
    assert lo < 0 < hi
    # the parts of one video are drawn together: four parts of "a" and one clip of "b" are two
    # draws, so a quarter of the resamples hold "b" alone (mean -1) and a quarter "a" alone (+1)
    diffs = [1.0, 1.0, 1.0, 1.0, -1.0]
    assert paired_interval(diffs, ["a"] * 4 + ["b"], boot=4000)[1:] == (-1.0, 1.0)
    _, lo, hi = paired_interval(diffs, list("acdeb"), boot=4000)  # as five videos: far narrower
    assert -1.0 < lo and hi == 1.0 and lo > -0.7
    with pytest.raises(ValueError):
        paired_interval([1.0], ["a", "b"])
