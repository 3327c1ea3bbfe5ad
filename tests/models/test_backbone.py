import torch
from skimage import data
from torch.nn import functional as F

from colorize.models.backbone import (
    FEATURE_BLOCKS,
    FrozenBackbone,
    load_pretrained_backbone,
    normalize_rgb255,
)


def test_chelsea_is_an_egyptian_cat():
    """The shipped state dict really is ImageNet EfficientNet-Lite0: chelsea -> class 285."""
    net = load_pretrained_backbone()
    img = torch.from_numpy(data.chelsea()).permute(2, 0, 1)[None].float()
    img = F.interpolate(img, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    with torch.inference_mode():
        probs = net(normalize_rgb255(img)).softmax(1)[0]
    assert int(probs.argmax()) == 285
    assert probs[285] > 0.4


def test_features_shapes_and_frozen():
    bb = FrozenBackbone(load_pretrained_backbone())
    bb.train()  # must stay in eval mode: batch norm statistics are the ImageNet ones
    assert not bb.net.training
    assert all(not p.requires_grad for p in bb.parameters())
    l = torch.rand(2, 1, 64, 96) * 100
    with torch.inference_mode():
        feats = bb(l)
    for stride, (_, ch) in FEATURE_BLOCKS.items():
        assert feats[stride].shape == (2, ch, 64 // stride, 96 // stride)
    assert feats["embed"].shape == (2, 1280)
    assert torch.isfinite(feats["embed"]).all()


def test_early_exit_matches_full_pass():
    bb = FrozenBackbone(load_pretrained_backbone())
    l = torch.rand(1, 1, 64, 64) * 100
    with torch.inference_mode():
        full = bb(l)
        part = bb(l, strides=(8,), embed=False)
    assert set(part) == {8}
    assert torch.equal(full[8], part[8])
