"""Zhang et al.'s colour rebalancing weights."""

import pytest
import torch

from colorize.models.selfreg import SelfRegFamily
from colorize.training.rebalance import ab_counts, pixel_weights, rebalance_weights
from tests.training.synthetic import synthetic_batch


def _mostly_grey(n_grey=900, n_red=100):
    ab = torch.zeros(1, 2, 1, n_grey + n_red)
    ab[0, 0, 0, n_grey:] = 60.0  # a rare saturated red
    return ab


def test_rare_colours_weigh_more_and_the_mean_weight_is_one():
    ab = _mostly_grey()
    table = rebalance_weights(ab_counts(ab), lam=0.5)
    w = pixel_weights(ab, table)[0, 0, 0]
    assert w[-1] > 1.5 * w[0]
    assert float(w.mean()) == pytest.approx(1.0, abs=1e-4)
    assert table[ab_counts(ab) == 0].abs().max() == 0  # bins that never occur carry no weight


def test_lam_one_is_uniform():
    ab = _mostly_grey()
    w = pixel_weights(ab, rebalance_weights(ab_counts(ab), lam=1.0))
    assert torch.allclose(w, torch.ones_like(w), atol=1e-4)


def test_bad_arguments():
    with pytest.raises(ValueError):
        rebalance_weights(torch.zeros(24, 24))
    with pytest.raises(ValueError):
        rebalance_weights(ab_counts(_mostly_grey()), lam=0.0)


def test_selfreg_rebalanced_loss_needs_weights_and_changes_the_loss():
    torch.manual_seed(0)
    from colorize.models.backbone import FrozenBackbone

    batch = synthetic_batch(b=2, t=2, size=32)
    bb = FrozenBackbone()
    plain = SelfRegFamily()
    net = plain.build_net().eval()
    reb = SelfRegFamily(rebalance=0.5)
    with pytest.raises(ValueError, match="ab_weights"):
        reb.training_step(net, batch, bb, 0)
    reb.ab_weights = rebalance_weights(ab_counts(batch.lab[:, :, 1:].flatten(0, 1)), 0.5)
    with torch.no_grad():
        a = plain.training_step(net, batch, bb, 0)["diversity"]
        b = reb.training_step(net, batch, bb, 0)["diversity"]
    assert torch.isfinite(b) and not torch.isclose(a, b)
