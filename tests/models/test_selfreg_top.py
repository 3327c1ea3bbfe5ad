"""selfreg with a tuned deep end of the backbone (--set tune_top=1)."""

import pytest
import torch

from colorize.models import create_model
from colorize.models.backbone import FrozenBackbone, load_pretrained_backbone
from colorize.models.selfreg import INFO, SelfRegColorizer, SelfRegFamily, SelfRegNet, checkpoint_filter_fn, net_for
from colorize.training.trainer import TrainConfig, Trainer
from tests.training.synthetic import photo_sampler, synthetic_batch


@pytest.fixture(scope="module")
def backbone():
    return FrozenBackbone(load_pretrained_backbone("lite0"))


def test_untrained_top_gives_the_frozen_backbones_features_from_stride_8(backbone):
    net = SelfRegNet(tune_top=True).eval()
    assert net.backbone_strides == ((2, 4, 8), False) and SelfRegNet().backbone_strides[1]
    l = torch.rand(2, 1, 64, 96) * 100
    with torch.no_grad():
        full = backbone(l, strides=(2, 4, 8, 16, 32), embed=True)
        part = backbone(l, strides=(2, 4, 8), embed=False)
        tuned = net.semantic(part)
    assert 16 not in part and "embed" not in part
    assert full.keys() == tuned.keys()
    for k in full:
        assert torch.allclose(full[k], tuned[k], atol=1e-5), k


def test_top_trains_its_weights_but_keeps_imagenet_batchnorm_statistics(backbone):
    torch.manual_seed(0)
    family = SelfRegFamily(tune_top=1, knn_samples=128)
    net = family.build_net().train()
    assert all(p.requires_grad for p in net.top.parameters())
    assert not any(m.training for m in net.top.modules() if isinstance(m, torch.nn.BatchNorm2d))
    stats = {k: v.clone() for k, v in net.top.state_dict().items() if "running" in k}
    out = family.training_step(net, synthetic_batch(b=2, t=2, size=64), backbone, step=0)
    out["loss"].backward()
    assert net.top.conv_head.weight.grad.abs().sum() > 0 and net.top.blocks[0]._depthwise_conv.weight.grad is not None
    assert all(torch.equal(v, net.top.state_dict()[k]) for k, v in stats.items())
    groups = family.param_groups(net, 1e-3)
    assert [g["lr"] for g in groups] == [1e-3, pytest.approx(1e-4)]
    assert sum(len(g["params"]) for g in groups) == len(list(net.parameters()))


def test_trainer_starts_the_top_from_imagenet_on_an_older_file_and_scales_its_lr(tmp_path):
    samp = photo_sampler(tmp_path / "photos", crop=64)
    torch.manual_seed(0)
    old = SelfRegNet()
    torch.save(old.state_dict(), tmp_path / "old.pt")
    cfg = TrainConfig(model="selfreg", data=(), out=str(tmp_path / "run"), steps=2, batch=1, size=64, threads=1,
                      warmup=1, eval_every=2, eval_batches=1, init=str(tmp_path / "old.pt"),
                      extra={"tune_top": "1", "top_lr": "0.25", "knn_samples": "64"})
    tr = Trainer(cfg, samp, samp)
    ref = load_pretrained_backbone("lite0")
    assert torch.equal(tr.net.top.conv_head.weight, ref._conv_head.weight)
    assert torch.equal(tr.net.f.head.weight, old.f.head.weight)
    tr.run()
    lrs = [g["lr"] for g in tr.opt.param_groups]
    assert lrs[1] == pytest.approx(0.25 * lrs[0]) and lrs[0] > 0
    assert not torch.equal(tr.net.top.conv_head.weight, ref._conv_head.weight)
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    assert any(k.startswith("top.") for k in best)


def test_a_file_with_a_top_builds_with_it_and_the_stream_uses_it(tmp_path, backbone):
    torch.manual_seed(0)
    net = SelfRegNet(tune_top=True).eval()
    with torch.no_grad():
        net.top.conv_head.weight.mul_(1.5)  # a tuned deep end differs from ImageNet's
    state = net.state_dict()
    assert net_for(checkpoint_filter_fn(state)).top is not None and SelfRegNet().top is None
    torch.save(state, tmp_path / "top.pt")
    model = create_model("selfreg", weights=tmp_path / "top.pt", refine_passes=0)
    assert torch.equal(model.net.top.conv_head.weight, net.top.conv_head.weight)
    l = torch.rand(1, 64, 96) * 100
    got = model.push(0, l) + model.flush()
    with torch.no_grad():
        feats = net.semantic(backbone(l[None], strides=(2, 4, 8), embed=False))
        want = net.f(l[None], feats, num=1)[0]
        plain = net.f(l[None], backbone(l[None]), num=1)[0]
    assert torch.allclose(got[0][1].float(), want.float(), atol=1e-3)
    assert not torch.allclose(want, plain, atol=1e-2)  # the tuned features are the ones read
    stream = SelfRegColorizer(INFO, net, backbone, torch.device("cpu"), refine_passes=0)
    assert stream.net.top is not None
