import numpy as np
import pytest
import torch

from colorize.pipeline.scenes import SceneCutDetector, frame_difference
from tests.pipeline.fakes import grey_frame


def _l(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img.astype(np.float32) / 255.0 * 100.0).unsqueeze(0)


def test_cut_between_shots_only():
    det = SceneCutDetector()
    cuts = [i for i in range(20) if det.is_cut(_l(grey_frame(i, 64, 48, shot=0 if i < 12 else 1)))]
    assert cuts == [12]


def test_motion_and_fade_are_not_cuts():
    det = SceneCutDetector()
    base = grey_frame(0, 80, 60)
    frames = [np.roll(base, 6 * i, axis=1) for i in range(10)]  # fast pan
    frames += [(base * (1 - k / 12)).astype(np.uint8) for k in range(12)]  # fade to black
    assert not any(det.is_cut(_l(f)) for f in frames)


def test_reset_forgets_previous_frame():
    det = SceneCutDetector()
    for i in range(5):
        det.is_cut(_l(grey_frame(i, 64, 48, 0)))
    det.reset()
    assert det.is_cut(_l(grey_frame(0, 64, 48, 1))) is False  # first frame after reset starts a shot


def test_difference_bounds_and_bad_shape():
    a = torch.zeros(12, 16)
    assert frame_difference(a, a) == 0.0
    assert frame_difference(a, torch.ones(12, 16)) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        SceneCutDetector().is_cut(torch.zeros(2, 8, 8))
    with pytest.raises(ValueError):
        SceneCutDetector(threshold=0)
