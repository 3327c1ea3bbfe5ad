"""Losses on synthetic cases with known answers."""

import pytest
import torch

from colorize.flow import inside_mask
from colorize.training.losses import (
    bilateral_loss,
    huber,
    knn_pairs,
    masked_l1,
    perceptual_distance,
    ranked_diversity_loss,
    temporal_loss,
)


def _two_region_guide(h=16, w=20):
    guide = torch.zeros(1, 3, h, w)
    guide[:, 0, :, : w // 2] = 1.0  # red left half
    guide[:, 2, :, w // 2 :] = 1.0  # blue right half
    return guide


def test_bilateral_loss_is_zero_for_a_constant_prediction():
    guide = torch.rand(2, 3, 16, 16)
    pred = torch.full((2, 4, 16, 16), 0.3)
    assert bilateral_loss(pred, guide, num_samples=128) == 0


def test_bilateral_neighbours_stay_inside_a_colour_region():
    guide = _two_region_guide()
    idx, nbr = knn_pairs(guide, k=5, num_samples=10_000)  # all 320 pixels
    side = lambda i: (i % 20) < 10  # noqa: E731
    assert idx.shape == (1, 320) and nbr.shape == (1, 320, 5)
    assert (side(nbr) == side(idx)[..., None]).all()
    assert not (nbr == idx[..., None]).any()  # a pixel is not its own neighbour
    # a prediction constant per region costs nothing, one that splits a region does
    per_region = guide[:, :1] * 0.8
    assert bilateral_loss(per_region, guide, num_samples=10_000) == 0
    noisy = torch.rand(1, 2, 16, 20)
    assert bilateral_loss(noisy, guide, num_samples=10_000) > 0.1


def test_bilateral_loss_subsampling_and_gradient():
    guide = torch.rand(1, 3, 32, 32)
    pred = torch.rand(1, 2, 32, 32, requires_grad=True)
    loss = bilateral_loss(pred, guide, k=5, num_samples=200, generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert loss > 0 and (pred.grad != 0).sum() > 0
    with pytest.raises(ValueError):
        bilateral_loss(pred, torch.rand(1, 3, 16, 16))


def test_temporal_loss_is_zero_for_perfectly_warped_frames():
    g = torch.Generator().manual_seed(0)
    prev = torch.rand(2, 2, 16, 20, generator=g)
    curr = torch.roll(prev, shifts=(1, -2), dims=(-2, -1))  # frame t+1(x) = frame t(x + 2, y - 1)
    flow = torch.zeros(2, 2, 16, 20)
    flow[:, 0], flow[:, 1] = 2.0, -1.0
    mask = inside_mask(flow)
    assert temporal_loss(curr, prev, flow, mask) < 1e-6
    assert temporal_loss(curr, prev, torch.zeros_like(flow), mask) > 0.1  # wrong flow


def test_masked_l1_counts_only_masked_pixels():
    pred = torch.zeros(1, 2, 2, 2)
    target = torch.tensor([[[[1.0, 3.0], [0.0, 0.0]]]]).expand(1, 2, 2, 2)
    mask = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]])
    assert torch.isclose(masked_l1(pred, target, mask), torch.tensor(0.5))
    assert torch.isclose(masked_l1(pred, target), torch.tensor(1.0))


def test_ranked_diversity_loss_known_values():
    dists = torch.tensor([[1.0, 2.0], [3.0, 0.5]])
    betas = [0.5, 0.25]
    # sample 0: min 1 + 0.5*1 + 0.25*2 = 2;  sample 1: min 0.5 + 0.5*3 + 0.25*0.5 = 2.125
    assert torch.isclose(ranked_diversity_loss(dists, betas), torch.tensor(2.0625))
    with pytest.raises(ValueError):
        ranked_diversity_loss(dists, [1.0])


def test_ranked_diversity_gradient_goes_mostly_to_the_winner():
    dists = torch.tensor([[1.0, 0.2]], requires_grad=True)
    ranked_diversity_loss(dists, [0.1, 0.05]).backward()
    assert torch.allclose(dists.grad, torch.tensor([[0.1, 1.05]]))


def test_perceptual_distance():
    conv = torch.nn.Conv2d(3, 4, 3, padding=1)
    feature_fn = lambda x: [conv(x), torch.nn.functional.avg_pool2d(conv(x), 2)]  # noqa: E731
    x = torch.rand(3, 3, 8, 8)
    d0 = perceptual_distance(feature_fn, x, x)
    assert d0.shape == (3,) and torch.all(d0 == 0)
    y = x.clone().requires_grad_()
    d = perceptual_distance(feature_fn, y, x + 0.5)
    d.sum().backward()
    assert torch.all(d > 0) and y.grad.abs().sum() > 0


def test_huber_is_l1_like_for_large_and_quadratic_for_small_errors():
    z = torch.zeros(1, 4)
    assert torch.isclose(huber(torch.full((1, 4), 1.0), z, delta=0.05), torch.tensor(1.0 - 0.025))
    assert torch.isclose(huber(torch.full((1, 4), 0.01), z, delta=0.05), torch.tensor(0.5 * 0.01**2 / 0.05))


def test_class_cross_entropy_is_least_at_the_soft_target_and_rebalances():
    from colorize.color.bins import ab_class_centres, soft_encode
    from colorize.training.losses import class_cross_entropy
    from colorize.training.rebalance import NBINS

    c = ab_class_centres()
    ab = torch.randn(2, 2, 8, 8) * 15
    target = soft_encode(torch.nn.functional.interpolate(ab, size=(4, 4), mode="area"), c)
    at_target = torch.log(target.clamp_min(1e-9))
    ce = class_cross_entropy(at_target, ab, c)
    assert ce < class_cross_entropy(torch.zeros_like(at_target), ab, c)  # uniform is worse
    assert ce < class_cross_entropy(at_target + 0.5 * torch.randn_like(at_target), ab, c)
    twice = class_cross_entropy(at_target, ab, c, ab_weights=torch.full((NBINS, NBINS), 2.0))
    assert torch.allclose(twice, 2 * ce)
