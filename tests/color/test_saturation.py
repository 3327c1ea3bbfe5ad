import math

import numpy as np
import pytest
import torch

from colorize.color.saturation import colourfulness, mean_saturation, most_saturated, saturation_map


def _solid(rgb, h=4, w=6):
    return torch.tensor(rgb, dtype=torch.float64).view(1, 3, 1, 1).expand(1, 3, h, w).clone()


def test_grey_images_have_zero_saturation_and_colourfulness():
    for v in (0.0, 0.3, 1.0):
        grey = _solid((v, v, v))
        assert float(mean_saturation(grey)[0]) == 0.0
        assert float(colourfulness(grey)[0]) == pytest.approx(0.0, abs=1e-9)


def test_black_is_not_nan():
    sat = saturation_map(torch.zeros(1, 3, 2, 2))
    assert torch.equal(sat, torch.zeros(1, 1, 2, 2, dtype=torch.float64))


def test_saturation_known_values():
    assert float(mean_saturation(_solid((1.0, 0.0, 0.0)))[0]) == 1.0
    assert float(mean_saturation(_solid((0.8, 0.4, 0.4)))[0]) == pytest.approx(0.5)
    half = torch.cat((_solid((0.0, 0.0, 1.0), w=3), _solid((0.5, 0.5, 0.5), w=3)), dim=-1)
    assert float(mean_saturation(half)[0]) == pytest.approx(0.5)


def test_colourfulness_two_colours_by_hand():
    # Half pure red, half pure green (0..255): rg = ±255 -> std 255, mean 0;
    # yb = 127.5 everywhere -> std 0, mean 127.5.  M = 255 + 0.3 * 127.5 = 293.25.
    img = torch.cat((_solid((1.0, 0.0, 0.0), w=5), _solid((0.0, 1.0, 0.0), w=5)), dim=-1)
    assert float(colourfulness(img)[0]) == pytest.approx(293.25)
    # Solid red: no spread, only the mean term: 0.3 * sqrt(255² + 127.5²).
    assert float(colourfulness(_solid((1.0, 0.0, 0.0)))[0]) == pytest.approx(0.3 * math.hypot(255, 127.5))


def test_batch_shapes_and_numpy_in_numpy_out():
    rng = np.random.default_rng(0)
    x = rng.random((2, 3, 3, 8, 8))
    c = colourfulness(x)
    s = mean_saturation(x)
    assert isinstance(c, np.ndarray) and c.shape == (2, 3)
    assert isinstance(s, np.ndarray) and s.shape == (2, 3)
    assert np.allclose(c, colourfulness(torch.from_numpy(x)).numpy())
    assert np.all((s >= 0) & (s <= 1))


def test_more_colour_more_colourful():
    base = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    grey = base.mean(1, keepdim=True).expand_as(base)
    washed = 0.5 * base + 0.5 * grey
    assert colourfulness(grey)[0] < colourfulness(washed)[0] < colourfulness(base)[0]
    assert most_saturated(torch.cat((washed, base, grey))) == 1


def test_bad_input_raises():
    with pytest.raises(ValueError):
        mean_saturation(torch.zeros(1, 2, 4, 4))
    with pytest.raises(TypeError):
        colourfulness(torch.zeros(1, 3, 4, 4, dtype=torch.uint8))
    with pytest.raises(TypeError):
        colourfulness([[0.0]])
