import numpy as np
import pytest
import torch
from skimage import color, data

from colorize.color.lab import LabConverter, lab_to_rgb, rgb_to_l, rgb_to_lab


def _img():
    return data.chelsea()[::4, ::4] / 255.0


def test_rgb_to_lab_matches_skimage():
    img = _img()
    ref = color.rgb2lab(img)
    out = rgb_to_lab(torch.from_numpy(img).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    assert np.abs(out - ref).max() < 0.01


def test_lab_to_rgb_matches_skimage():
    lab = color.rgb2lab(_img())
    ref = color.lab2rgb(lab)
    out = lab_to_rgb(torch.from_numpy(lab).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    assert np.abs(out - ref).max() < 1e-3


def test_known_values():
    white = rgb_to_lab(torch.ones(1, 3, 1, 1, dtype=torch.float64)).flatten()
    assert torch.allclose(white, torch.tensor([100.0, 0.0, 0.0], dtype=torch.float64), atol=0.02)
    black = rgb_to_lab(torch.zeros(1, 3, 1, 1, dtype=torch.float64)).flatten()
    assert torch.allclose(black, torch.zeros(3, dtype=torch.float64), atol=1e-6)
    red = rgb_to_lab(torch.tensor([1.0, 0, 0], dtype=torch.float64).view(1, 3, 1, 1)).flatten()
    assert torch.allclose(red, torch.tensor([53.24, 80.09, 67.20], dtype=torch.float64), atol=0.05)


def test_round_trip_and_l_only():
    rgb = torch.rand(2, 3, 8, 9, dtype=torch.float64)
    lab = rgb_to_lab(rgb)
    assert torch.allclose(lab_to_rgb(lab), rgb, atol=1e-6)
    assert torch.allclose(rgb_to_l(rgb), lab[:, :1], atol=1e-9)


def test_module_equals_function_and_dtype_device_follow_input():
    rgb = torch.rand(1, 3, 4, 4)
    assert torch.equal(LabConverter()(rgb), rgb_to_lab(rgb))
    assert torch.equal(LabConverter(inverse=True)(rgb_to_lab(rgb)), lab_to_rgb(rgb_to_lab(rgb)))
    assert rgb_to_lab(rgb.half()).dtype == torch.float16


def test_gradcheck_float64():
    rgb = (torch.rand(1, 3, 3, 3, dtype=torch.float64) * 0.8 + 0.1).requires_grad_()
    assert torch.autograd.gradcheck(rgb_to_lab, (rgb,))


@pytest.mark.parametrize("shape", [(3, 4), (1, 2, 4, 4), (1, 4, 4, 4)])
def test_bad_shapes_raise(shape):
    with pytest.raises(ValueError):
        rgb_to_lab(torch.rand(*shape))
    with pytest.raises(TypeError):
        rgb_to_lab(np.zeros((1, 3, 4, 4)))
