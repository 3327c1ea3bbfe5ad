"""selfreg's mode selector: which of f's d outputs to show, learnt per pixel."""

import pytest
import torch

from colorize.models import create_model
from colorize.models.backbone import FrozenBackbone
from colorize.models.layers import ModeSelector
from colorize.models.selfreg import AB_SCALE, NUM_DIVERSE, SelfRegFamily, SelfRegNet, checkpoint_filter_fn, net_for
from tests.training.synthetic import synthetic_batch

STRIDES = (2, 4, 8, 16, 32)


@pytest.fixture(scope="module")
def backbone():
    torch.manual_seed(0)
    return FrozenBackbone().eval()  # random weights: shapes and bookkeeping only


def test_mixture_is_a_softmax_over_outputs_sharpened_by_temperature():
    sel = ModeSelector(8, 3)
    outputs = torch.randn(2, 3, 2, 16, 24) * 40
    same = outputs[:, :1].expand(-1, 3, -1, -1, -1)
    logits = torch.randn(2, 3, 4, 6)
    assert torch.allclose(sel.mix(logits, same), same[:, 0], atol=1e-4)  # weights sum to 1
    one_hot = torch.full((2, 3, 4, 6), -30.0)
    one_hot[:, 2] = 30.0
    assert torch.allclose(sel.mix(one_hot, outputs), outputs[:, 2], atol=1e-4)
    soft = torch.zeros(2, 3, 4, 6)
    soft[:, 1] = 1.0
    mean = outputs.mean(1)
    warm, cold = sel.mix(soft, outputs, temperature=100.0), sel.mix(soft, outputs, temperature=0.01)
    assert torch.allclose(warm, mean, atol=0.5) and torch.allclose(cold, outputs[:, 1], atol=1e-3)
    sel.temperature.fill_(0.01)  # the buffer is the default
    assert torch.allclose(sel.mix(soft, outputs), cold)


def test_output_zero_is_the_mixture_and_the_others_are_the_heads(backbone):
    torch.manual_seed(1)
    net = SelfRegNet(select=True).eval()
    l = torch.rand(2, 1, 64, 96) * 100
    with torch.no_grad():
        feats = backbone(l, strides=STRIDES, embed=True)
        out = net.f(l, feats)
        out1 = net.f(l, feats, num=1)
        reg, logits = net.f.selected_parts(l, feats)
        plain, _ = net.f.parts(l, feats, NUM_DIVERSE)
    assert out.shape == (2, NUM_DIVERSE, 2, 64, 96) and logits.shape == (2, NUM_DIVERSE, 16, 24)
    assert torch.allclose(out[:, 0], net.f.select.mix(logits, reg), atol=1e-5)
    assert torch.allclose(out[:, 1:], reg[:, 1:], atol=1e-5)
    assert torch.allclose(out1[:, 0], out[:, 0], atol=1e-5)
    assert torch.allclose(plain, reg, atol=1e-5)  # the heads are those of the plain net
    assert not torch.allclose(out[:, 0], reg[:, 0], atol=1e-2)  # the untrained selector mixes


def test_a_selector_file_builds_with_its_selector(tmp_path):
    net = SelfRegNet(select=True)
    net.f.select.temperature.fill_(0.5)
    state = net.state_dict()
    assert net_for(checkpoint_filter_fn(state)).f.select is not None
    assert SelfRegNet().f.select is None
    torch.save(state, tmp_path / "sel.pt")
    model = create_model("selfreg", weights=tmp_path / "sel.pt", refine_passes=0)
    assert model.net.f.select is not None and float(model.net.f.select.temperature) == 0.5


def test_select_loss_targets_the_output_closest_to_the_truth():
    family = SelfRegFamily()
    gt = torch.rand(1, 2, 16, 16) * 0.4 - 0.2
    pred = (gt[:, None] + 0.3).repeat(1, 3, 1, 1, 1)  # every output off by 0.3 ...
    pred[:, 2, :, :, :8] = gt[..., :8]  # ... except output 2 on the left half
    pred[:, 1, :, :, 8:] = gt[..., 8:]  # and output 1 on the right half
    l = torch.full((1, 1, 16, 16), 60.0)
    right = torch.full((1, 3, 4, 4), -20.0)
    right[:, 2, :, :2] = 20.0
    right[:, 1, :, 2:] = 20.0
    ce, acc = family._select_loss(right, pred, gt, l)
    assert acc == 1.0 and ce < 1e-6
    ce_wrong, acc_wrong = family._select_loss(right.flip(-1), pred, gt, l)
    assert acc_wrong == 0.0 and ce_wrong > 10


def test_select_only_trains_the_selector_alone_and_keeps_batchnorm_statistics(backbone):
    torch.manual_seed(0)
    family = SelfRegFamily(select_only=1, knn_samples=128)
    net = family.build_net().train()
    assert {n for n, p in net.named_parameters() if p.requires_grad} == {
        n for n, _ in net.named_parameters() if n.startswith("f.select.")}
    stats = {k: v.clone() for k, v in net.state_dict().items() if "running" in k}
    out = family.training_step(net, synthetic_batch(b=2, t=2, size=32), backbone, step=0)
    assert {"loss", "select", "select_acc", "ab_l1"} <= set(out) and torch.isfinite(out["loss"])
    out["loss"].backward()
    assert all(p.grad is None for n, p in net.named_parameters() if not n.startswith("f.select."))
    assert net.f.select.body[-1].weight.grad.abs().sum() > 0
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in stats.items())
    assert net.f.training  # the trainer's mode is given back


def test_joint_selector_term_leaves_the_gradients_of_f_and_g_unchanged(backbone):
    batch = synthetic_batch(b=2, t=2, size=32, seed=3)
    grads = []
    for select in (0, 1):
        torch.manual_seed(0)
        family = SelfRegFamily(select=select, knn_samples=128)
        net = family.build_net().train()
        out = family.training_step(net, batch, backbone, step=5)
        loss = out["loss"] - (family.select_weight * out["select"] if select else 0.0)
        (out["loss"]).backward()
        grads.append({n: p.grad.clone() for n, p in net.named_parameters() if not n.startswith("f.select.")})
        if select:
            assert net.f.select.body[-1].weight.grad.abs().sum() > 0 and loss < out["loss"]
    assert grads[0].keys() == grads[1].keys()
    assert all(torch.allclose(grads[0][n], grads[1][n], atol=1e-6) for n in grads[0])


def test_selector_and_class_head_cannot_be_combined():
    with pytest.raises(ValueError, match="select"):
        SelfRegFamily(select=1, classes=1).build_net()
    with pytest.raises(ValueError, match="select"):
        SelfRegNet(classes=True, select=True)


def test_validation_predict_shows_the_mixture(backbone):
    torch.manual_seed(0)
    family = SelfRegFamily(select=1)
    net = family.build_net().eval()
    batch = synthetic_batch(b=1, t=2, size=32)
    ab = family.predict(net, batch.lab, backbone)
    l = batch.lab[0, 1, :1][None]
    with torch.no_grad():
        reg, logits = net.f.selected_parts(l, backbone(l, strides=STRIDES, embed=True))
    assert torch.allclose(ab[0, 1], net.f.select.mix(logits, reg)[0], atol=1e-4)
    assert ab.abs().max() <= AB_SCALE
