"""Self-augmented references: different from the target pixel by pixel, related in colour."""

import numpy as np
import pytest
import torch

from colorize.color.lab import rgb_to_lab
from colorize.training.reference_aug import (
    CLIP_FRAME,
    SELF_WARPED,
    UNRELATED,
    ReferenceAugConfig,
    apply_affine_to_grid,
    augment_reference,
    make_reference,
    random_affine,
    tps_grid,
)
from tests.training.synthetic import smooth_image


def _images(n, h=48, w=64, seed=0):
    rng = np.random.default_rng(seed)
    arr = np.stack([smooth_image(rng, h, w) for _ in range(n)])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 255


def _ab_hist(rgb, bins=12):
    ab = rgb_to_lab(rgb)[:, 1:].clamp(-127, 127)
    idx = ((ab + 128) / 256 * bins).long().clamp(0, bins - 1)
    flat = idx[:, 0] * bins + idx[:, 1]
    hist = torch.stack([torch.bincount(f.flatten(), minlength=bins * bins).float() for f in flat])
    return hist / hist.sum(1, keepdim=True)


def test_augmented_reference_is_different_but_related():
    src = _images(6)
    g = torch.Generator().manual_seed(0)
    ref = augment_reference(src, g)
    assert ref.shape == src.shape and ref.min() >= 0 and ref.max() <= 1
    # not a pixel copy: moved content
    assert ((ref - src).abs().mean(dim=(1, 2, 3)) > 0.03).all()
    # but the same colours: its ab histogram is far closer to its source than to other images
    h_src, h_ref = _ab_hist(src), _ab_hist(ref)
    dist = torch.cdist(h_ref, h_src, p=1)  # (ref i, source j)
    assert (dist.argmin(dim=1) == torch.arange(6)).all()
    assert (dist.diagonal() < 0.6).all()


def test_augmentation_is_reproducible_from_the_generator():
    src = _images(2)
    a = augment_reference(src, torch.Generator().manual_seed(3))
    b = augment_reference(src, torch.Generator().manual_seed(3))
    c = augment_reference(src, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_tps_interpolates_its_control_points():
    lin = torch.linspace(-1, 1, 4, dtype=torch.float64)
    gy, gx = torch.meshgrid(lin, lin, indexing="ij")
    ctrl = torch.stack((gx, gy), -1).reshape(1, 16, 2)
    # identity when nothing moves
    grid = tps_grid(ctrl, ctrl, 7, 7)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, 7), torch.linspace(-1, 1, 7), indexing="ij")
    assert torch.allclose(grid[0], torch.stack((xs, ys), -1), atol=1e-5)
    # control points land exactly where they were sent (pixels 0, 2, 4, 6 sit on the lattice)
    target = ctrl + 0.1 * torch.randn(1, 16, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    grid = tps_grid(ctrl, target, 7, 7)
    on_lattice = grid[0, ::2, ::2].reshape(16, 2)
    assert torch.allclose(on_lattice, target[0].float(), atol=1e-4)
    with pytest.raises(ValueError):
        tps_grid(ctrl, target[:, :5], 7, 7)


def test_affine_identity_and_flip():
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, 5), torch.linspace(-1, 1, 6), indexing="ij")
    grid = torch.stack((xs, ys), -1)[None]
    theta = random_affine(1, torch.Generator().manual_seed(0), rot_deg=0, scale=(1, 1), shift=0, p_flip=0)
    assert torch.allclose(apply_affine_to_grid(grid, theta), grid, atol=1e-6)
    theta = random_affine(1, torch.Generator().manual_seed(0), rot_deg=0, scale=(1, 1), shift=0, p_flip=1)
    assert torch.allclose(apply_affine_to_grid(grid, theta), grid * torch.tensor([-1.0, 1.0]), atol=1e-6)


def test_make_reference_kinds():
    clip = _images(6, seed=1).view(2, 3, 3, 48, 64)
    other = _images(2, seed=2)
    g = torch.Generator().manual_seed(0)
    ref, kind = make_reference(clip, other, g, ReferenceAugConfig(p_unrelated=1.0))
    assert (kind == UNRELATED).all() and ref.shape == (2, 3, 48, 64)
    assert (_ab_hist(ref) - _ab_hist(other)).abs().sum(1).max() < (_ab_hist(ref) - _ab_hist(clip[:, 0])).abs().sum(1).min()
    ref, kind = make_reference(clip, other, g, ReferenceAugConfig(p_unrelated=0.0, p_clip_frame=1.0))
    assert (kind == CLIP_FRAME).all()
    light = (ref - clip[:, 0]).abs().mean()
    ref_s, kind = make_reference(clip, other, g, ReferenceAugConfig(p_unrelated=0.0, p_clip_frame=0.0))
    assert (kind == SELF_WARPED).all()
    assert light < (ref_s - clip[:, 0]).abs().mean()  # the propagation-mode reference is a light touch
    mixed = make_reference(clip.repeat(50, 1, 1, 1, 1)[..., :16, :16], other.repeat(50, 1, 1, 1)[..., :16, :16], g)[1]
    assert set(mixed.tolist()) == {SELF_WARPED, CLIP_FRAME, UNRELATED}
    with pytest.raises(ValueError):
        make_reference(clip[:, 0], other, g)
    with pytest.raises(ValueError):
        make_reference(clip, other[:1], g)
