"""``exemplar``: reference-guided video colourization (Deep Exemplar-based Video Colorization).

Paper: Zhang, He, Liao, Sander & Chen, *Deep Exemplar-based Video Colorization*, CVPR 2019; the
self-augmented references used for training come from Color2Embed (Zhao et al. 2021).

Two subnets, as in the paper, sized for a CPU:

- **Correspondence** N: the frozen EfficientNet-Lite0 (standing in for VGG19) gives features of the
  grey frame and of the *grey* reference (so both sides are comparable) at strides 4, 8, 16 and 32
  (the paper's relu2_2..relu5_2). They are resampled to one stride-8 grid, each level scaled to
  unit length and projected, then passed through shared residual blocks. A correlation matrix of
  mean-centred, L2-normalised features with a low-temperature softmax (tau = 0.01) warps the
  reference's ab onto the frame; the confidence map is the best correlation per position (eqs. 3-5).
  The blocks' last convolutions start at zero and the projections are orthogonal, so an untrained
  net already matches on the backbone's features: training refines a sensible starting point.
- **Colourization** C: a small encoder-decoder with skips (pixel-unshuffled input at 1/2, a
  bottleneck with local residual blocks at 1/8) taking L, the warped ab (upsampled), the
  confidence, the previous colourized frame (Lab; zeros plus a flag on the first frame of a shot)
  and, at the bottleneck, the frame's fused semantic features; out: ab = 128 tanh(.).

The reference is encoded once per :meth:`ExemplarColorizer.set_reference`; each pushed frame costs
one backbone pass, the correlation and C. The stream is recurrent: ``push`` returns each frame at
once; ``reset`` (scene cut) forgets the previous frame but keeps the reference. Both modes of the
paper work the same way: a foreign reference, or propagation (a coloured frame of the same shot).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F

from colorize.models.backbone import FEATURE_BLOCKS, FrozenBackbone, load_pretrained_backbone, normalize_rgb255
from colorize.models.base import ModelInfo, StreamColorizer
from colorize.models.overlap import FeaturesAhead
from colorize.models.registry import load_weights, register_model

if TYPE_CHECKING:  # training types only; nothing under colorize.training runs on the inference path
    from colorize.training.family import TrainBatch

AB_SCALE = 128.0
TAU = 0.01  # the paper's softmax temperature
LEVELS = (4, 8, 16, 32)  # backbone strides used for matching
LEVEL_DIMS = {4: 32, 8: 48, 16: 64, 32: 64}  # per-level projection widths
FEAT_DIM = sum(LEVEL_DIMS.values())
GRID = 8  # stride of the correlation grid


# ------------------------------------------------------------------------------------- blocks


class _MatchBlock(nn.Module):
    """Bottleneck residual block (IN + PReLU, reflect padding as in the paper's Table A).

    The last convolution starts at zero, so the block is the identity until training moves it.
    """

    def __init__(self, c: int, mid: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c, mid, 1),
            nn.InstanceNorm2d(mid),
            nn.PReLU(mid),
            nn.Conv2d(mid, mid, 3, padding=1, padding_mode="reflect"),
            nn.InstanceNorm2d(mid),
            nn.PReLU(mid),
            nn.Conv2d(mid, c, 1),
        )
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class _ResBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.conv2(F.relu(self.conv1(x))))


def _conv(cin: int, cout: int, stride: int = 1, k: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2), nn.ReLU(inplace=True))


# --------------------------------------------------------------------------- correspondence ops


def normalize_features(f: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, C, h*w): centred on the image's mean feature, unit length per position."""
    f = f.flatten(2)
    if f.dtype != torch.float64:
        f = f.float()  # the correlation runs in float32 even when the nets run in half precision
    f = f - f.mean(dim=2, keepdim=True)
    return f / (f.norm(dim=1, keepdim=True) + 1e-6)


def correlation_warp(
    fx: torch.Tensor, fy: torch.Tensor, ab_y: torch.Tensor, tau: float = TAU, chunk: int = 4096
) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp reference colours by feature correlation (paper eqs. 3-5).

    fx: (B, C, Nx) and fy: (B, C, Ny), both from :func:`normalize_features`; ab_y: (B, 2, Ny).
    Returns ``warped`` (B, 2, Nx) = sum_j softmax_j(M(i, j) / tau) ab_y(j) and ``confidence``
    (B, 1, Nx) = max_j M(i, j) in [-1, 1]. Rows are processed in chunks to bound memory.
    """
    if fx.dim() != 3 or fy.dim() != 3 or fx.shape[:2] != fy.shape[:2]:
        raise ValueError(f"features must be (B, C, N) with equal B, C; got {tuple(fx.shape)} and {tuple(fy.shape)}")
    if ab_y.shape != (fy.shape[0], 2, fy.shape[2]):
        raise ValueError(f"ab_y must be (B, 2, Ny) = {(fy.shape[0], 2, fy.shape[2])}, got {tuple(ab_y.shape)}")
    warped, conf = [], []
    fx_t = fx.transpose(1, 2) / tau  # fold the temperature into the smaller operand
    ab_y = ab_y.to(fx.dtype)
    ab_t = torch.cat((ab_y, torch.ones_like(ab_y[:, :1])), 1).transpose(1, 2)
    for s in range(0, fx_t.shape[1], chunk):
        m = torch.bmm(fx_t[:, s : s + chunk], fy)  # (B, n, Ny): M / tau
        best = m.max(dim=2, keepdim=True).values  # its backward keeps only the indices, so m may change
        conf.append(best[..., 0] * tau)
        # The softmax written out in place (the (n, Ny) matrix is the big tensor here); the ones
        # column of ab_t gives the normaliser in the same product.
        # The clamp keeps exp() out of float32 denormals, which are very slow on CPUs; weights
        # below e^-50 are zero for any purpose.
        num = torch.bmm(m.sub_(best.detach()).clamp_(min=-50.0).exp_(), ab_t)
        warped.append(num[..., :2] / num[..., 2:])
    return torch.cat(warped, 1).transpose(1, 2), torch.cat(conf, 1)[:, None]


@dataclass(frozen=True)
class ReferenceCode:
    """A reference encoded once: normalised features (B, C, Ny) and its ab on the grid (B, 2, Ny)."""

    features: torch.Tensor
    ab: torch.Tensor


# ------------------------------------------------------------------------------------- model


class CorrespondenceNet(nn.Module):
    """Backbone features (stride 4..32) -> fused stride-8 features shared by frame and reference."""

    def __init__(self, blocks: int = 2, mid: int = 64) -> None:
        super().__init__()
        self.proj = nn.ModuleDict()
        for s in LEVELS:
            cin, cout = FEATURE_BLOCKS[s][1], LEVEL_DIMS[s]
            conv = nn.Conv2d(cin, cout, 1, bias=False)
            # Orthogonal and norm-preserving on average, so the untrained net matches on the
            # backbone's own geometry (random projections keep inner products, Johnson-Lindenstrauss).
            nn.init.orthogonal_(conv.weight)
            with torch.no_grad():
                conv.weight.mul_(math.sqrt(max(1.0, cin / cout)))
            self.proj[str(s)] = conv
        self.blocks = nn.Sequential(*(_MatchBlock(FEAT_DIM, mid) for _ in range(blocks)))

    def forward(self, feats: dict) -> torch.Tensor:
        """feats: the backbone's {stride: (B, C_s, H/s, W/s)} -> (B, FEAT_DIM, H/8, W/8)."""
        size = feats[GRID].shape[-2:]
        parts = []
        for s in LEVELS:
            f = feats[s]
            if s < GRID:
                f = F.avg_pool2d(f, GRID // s)
            elif s > GRID:
                f = F.interpolate(f, size=size, mode="bilinear", align_corners=False)
            # Unit length per level: each level weighs the same whatever its channel count or scale.
            f = f / (f.norm(dim=1, keepdim=True) + 1e-6) / math.sqrt(len(LEVELS))
            parts.append(self.proj[str(s)](f))
        return self.blocks(torch.cat(parts, 1))


class ColorizationNet(nn.Module):
    """Encoder-decoder with skips. Inputs at the working resolution H x W (multiples of 8)."""

    IN_CH = 8  # L, warped ab (2), confidence, previous L, previous ab (2), first-frame flag

    def __init__(self, c1: int = 24, c2: int = 48, c3: int = 96, feat: int = 64) -> None:
        super().__init__()
        self.e1 = _conv(4 * self.IN_CH, c1)  # 1/2 (pixel-unshuffled input)
        self.e2 = nn.Sequential(_conv(c1, c2, 2), _conv(c2, c2))  # 1/4
        self.e3 = _conv(c2, c3, 2)  # 1/8
        self.feat = _conv(FEAT_DIM, feat, k=1)
        self.mid_in = _conv(c3 + feat + 3, c3, k=1)  # + warped ab and confidence at their own grid
        self.mid = nn.Sequential(_ResBlock(c3), _ResBlock(c3))
        self.up2 = nn.Conv2d(c3, c2, 1)
        self.d2 = _conv(c2, c2)
        self.up1 = nn.Conv2d(c2, c1, 1)
        self.d1 = _conv(c1, c1)
        self.out = nn.Conv2d(c1, 8, 3, padding=1)  # 4 sub-pixels x ab, pixel-shuffled to full size

    def forward(
        self,
        l: torch.Tensor,
        warped_ab: torch.Tensor,
        conf: torch.Tensor,
        prev_lab: torch.Tensor,
        first: torch.Tensor,
        fused: torch.Tensor,
    ) -> torch.Tensor:
        """l (B, 1, H, W) 0..100; warped_ab (B, 2, H/8, W/8); conf (B, 1, H/8, W/8); prev_lab
        (B, 3, H, W) (ignored where ``first`` (B,) is 1); fused (B, FEAT_DIM, H/8, W/8).
        Returns ab (B, 2, H, W) in (-128, 128)."""
        h, w = l.shape[-2:]
        keep = (1.0 - first.to(l.dtype)).view(-1, 1, 1, 1)
        small = torch.cat((warped_ab / AB_SCALE, conf), 1).to(l.dtype)
        x = torch.cat(
            (
                l / 50.0 - 1.0,
                F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False),
                keep * (prev_lab[:, :1] / 50.0 - 1.0),
                keep * prev_lab[:, 1:] / AB_SCALE,
                (1.0 - keep).expand(-1, 1, h, w),
            ),
            1,
        )
        e1 = self.e1(F.pixel_unshuffle(x, 2))
        e2 = self.e2(e1)
        y = self.mid_in(torch.cat((self.e3(e2), self.feat(fused.to(l.dtype)), small), 1))
        y = self.mid(y)
        y = self.d2(F.interpolate(self.up2(y), scale_factor=2, mode="bilinear", align_corners=False) + e2)
        y = self.d1(F.interpolate(self.up1(y), scale_factor=2, mode="bilinear", align_corners=False) + e1)
        return torch.tanh(F.pixel_shuffle(self.out(y), 2)) * AB_SCALE


class ExemplarNet(nn.Module):
    """The trainable part (what the weights file holds); the frozen backbone is passed in."""

    def __init__(self, tau: float = TAU) -> None:
        super().__init__()
        self.tau = tau
        self.corr = CorrespondenceNet()
        self.color = ColorizationNet()

    def encode_reference(self, feats: dict, ab: torch.Tensor) -> ReferenceCode:
        """Backbone features of the reference's L and its ab (B, 2, H, W) -> :class:`ReferenceCode`."""
        fused = self.corr(feats)
        ab_grid = F.adaptive_avg_pool2d(ab.to(torch.float64 if ab.dtype == torch.float64 else torch.float32), fused.shape[-2:])
        return ReferenceCode(normalize_features(fused), ab_grid.flatten(2))

    def match(self, fused: torch.Tensor, ref: ReferenceCode) -> tuple[torch.Tensor, torch.Tensor]:
        """Fused frame features (B, C, h, w) -> warped ab (B, 2, h, w), confidence (B, 1, h, w)."""
        b, _, h, w = fused.shape
        fy, ab = ref.features, ref.ab
        if fy.shape[0] != b:
            fy, ab = fy.expand(b, -1, -1), ab.expand(b, -1, -1)
        warped, conf = correlation_warp(normalize_features(fused), fy, ab, self.tau)
        return warped.view(b, 2, h, w), conf.view(b, 1, h, w)

    def forward(
        self, l: torch.Tensor, feats: dict, ref: ReferenceCode, prev_lab: torch.Tensor, first: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step for a batch of frames: returns (ab, warped ab, confidence)."""
        fused = self.corr(feats)
        warped, conf = self.match(fused, ref)
        ab = self.color(l, warped, conf, prev_lab, first, fused)
        return ab, warped, conf


# -------------------------------------------------------------------------- stream interface


def _resize_reference(ref_lab: torch.Tensor, short_side: int) -> torch.Tensor:
    """Resize, keeping the aspect ratio, so the short side is ``short_side`` (the frames' scale:
    backbone features are not scale invariant) and the long side at most 3x that; sides are
    rounded to multiples of the grid."""
    h, w = ref_lab.shape[-2:]
    s = min(short_side / min(h, w), 3 * short_side / max(h, w))
    nh, nw = (max(2 * GRID, int(round(x * s / GRID)) * GRID) for x in (h, w))
    if (nh, nw) == (h, w):
        return ref_lab
    return F.interpolate(ref_lab, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)


class ExemplarColorizer(StreamColorizer):
    """Recurrent exemplar colourizer: grey frames in, chroma out, one frame at a time.

    The reference is encoded at the scale of the frames it colours (its short side = the frames'
    short side, unless ``ref_short_side`` fixes it), once: encodings are cached per reference tensor
    and scale, so scoring several references per shot and then setting the winner costs one
    encoding each.
    """

    _CACHE = 8  # encoded references kept

    def __init__(
        self,
        info: ModelInfo,
        net: ExemplarNet,
        backbone: FrozenBackbone,
        device: torch.device,
        dtype: torch.dtype = torch.float32,
        sha256: str | None = None,
        ref_short_side: int | None = None,
        overlap: bool | None = None,
    ) -> None:
        self.info = info
        self.device = torch.device(device)
        self.dtype = dtype
        # channels_last: oneDNN's faster convolution path on CPU (about 1.3x here), tensor cores on GPU.
        self.net = net.to(device=self.device, dtype=dtype, memory_format=torch.channels_last).eval()
        self.backbone = backbone.to(device=self.device, dtype=dtype, memory_format=torch.channels_last).eval()
        self.weights_sha256 = sha256
        self.ref_short_side = ref_short_side
        self._ref_lab: torch.Tensor | None = None
        self._codes: OrderedDict = OrderedDict()
        self._prev: torch.Tensor | None = None
        # overlap (colorize.models.overlap): the backbone of the newest frame runs in a worker
        # thread while the nets colour the frame before; the same colours, one push later. Each
        # frame keeps the reference that was set when it was pushed.
        self._ahead = FeaturesAhead(self.device, overlap, name="exemplar-backbone")
        self.overlap = self._ahead.enabled

    # ---------------------------------------------------------------- reference
    @staticmethod
    def _check_reference(ref_lab: torch.Tensor) -> None:
        if not isinstance(ref_lab, torch.Tensor) or ref_lab.dim() != 4 or ref_lab.shape[:2] != (1, 3):
            shape = tuple(ref_lab.shape) if isinstance(ref_lab, torch.Tensor) else type(ref_lab).__name__
            raise ValueError(f"reference must be Lab of shape (1, 3, H, W), got {shape}")
        if min(ref_lab.shape[-2:]) < 2 * GRID:
            raise ValueError(f"reference is too small ({tuple(ref_lab.shape[-2:])}); it needs at least 16 x 16 pixels")
        if not torch.isfinite(ref_lab).all():
            raise ValueError("reference contains NaN or infinite values")

    def _code(self, ref_lab: torch.Tensor, frame_hw: tuple[int, int]) -> ReferenceCode:
        short = self.ref_short_side or min(frame_hw)
        # The tensor itself is kept in the entry, so its storage (and data_ptr) cannot be reused;
        # _version changes if it is modified in place.
        # Inference tensors (made under torch.inference_mode) keep no version counter.
        version = -1 if ref_lab.is_inference() else ref_lab._version
        key = (ref_lab.data_ptr(), version, tuple(ref_lab.shape), ref_lab.stride(), ref_lab.dtype,
               str(ref_lab.device), short)
        hit = self._codes.get(key)
        if hit is not None:
            self._codes.move_to_end(key)
            return hit[1]
        ref = _resize_reference(ref_lab.to(self.device, torch.float32), short)
        feats = self.backbone(ref[:, :1].to(self.dtype), strides=LEVELS, embed=False)
        code = self.net.encode_reference(feats, ref[:, 1:])
        self._codes[key] = (ref_lab, code)
        while len(self._codes) > self._CACHE:
            self._codes.popitem(last=False)
        return code

    def set_reference(self, ref_lab: torch.Tensor) -> None:
        """The colour reference, Lab (1, 3, H, W), any size. Encoded once, at the first frame's
        scale; later frames reuse it. Temporal state is kept (call :meth:`reset` at a cut)."""
        self._check_reference(ref_lab)
        self._ref_lab = ref_lab

    @torch.inference_mode()
    def reference_score(self, l: torch.Tensor, ref_lab: torch.Tensor) -> float:
        """Mean best-correlation confidence of grey frame ``l`` (1, H, W) against ``ref_lab``: in
        [-1, 1], higher is a better match. Leaves the current reference and the stream state alone."""
        x = self._check_frame(l)
        self._check_reference(ref_lab)
        code = self._code(ref_lab, x.shape[-2:])
        fused = self.net.corr(self.backbone(x, strides=LEVELS, embed=False))
        _, conf = self.net.match(fused, code)
        return float(conf.mean())

    # ------------------------------------------------------------------- stream
    def _check_frame(self, l: torch.Tensor) -> torch.Tensor:
        if not isinstance(l, torch.Tensor) or l.dim() != 3 or l.shape[0] != 1:
            shape = tuple(l.shape) if isinstance(l, torch.Tensor) else type(l).__name__
            raise ValueError(f"frame must be L of shape (1, H, W), got {shape}")
        h, w = l.shape[-2:]
        if h % GRID or w % GRID or min(h, w) < 2 * GRID:
            raise ValueError(
                f"frame size {h}x{w} must be a multiple of {GRID} (the model's size_multiple) and at least {2 * GRID}"
            )
        return l.to(self.device, self.dtype)[None]

    @torch.inference_mode()
    def push(self, index: int, l: torch.Tensor) -> list[tuple[int, torch.Tensor]]:
        if self._ref_lab is None:
            raise RuntimeError("the exemplar model needs a reference: call set_reference() before push()")
        x = self._check_frame(l)
        code = self._code(self._ref_lab, x.shape[-2:])
        return [self._colour(*item, feats) for item, feats in self._ahead.push((index, x, code), self._features, x)]

    @torch.inference_mode()
    def flush(self) -> list[tuple[int, torch.Tensor]]:
        return [self._colour(*item, feats) for item, feats in self._ahead.drain()]

    def reset(self) -> None:
        """Scene cut or new file: forget the previous frame (and any frame held back), keep the
        reference."""
        self._ahead.clear()
        self._prev = None

    def _features(self, x: torch.Tensor) -> dict:
        return self.backbone(x, strides=LEVELS, embed=False)

    def _colour(self, index: int, x: torch.Tensor, code: ReferenceCode, feats: dict) -> tuple[int, torch.Tensor]:
        prev = self._prev
        if prev is None or prev.shape[-2:] != x.shape[-2:]:
            prev = torch.zeros(1, 3, *x.shape[-2:], device=self.device, dtype=self.dtype)
            first = torch.ones(1, device=self.device)
        else:
            first = torch.zeros(1, device=self.device)
        ab, _, _ = self.net(x, feats, code, prev, first)
        self._prev = torch.cat((x, ab), 1)
        return index, ab.float()


# ------------------------------------------------------------------------ checkpoint / registry


INFO = ModelInfo(
    name="exemplar",
    summary="Deep Exemplar-based Video Colorization: correspondence warp of a reference + recurrent colourization net",
    paper="Zhang et al., Deep Exemplar-based Video Colorization, CVPR 2019",
    needs_reference=True,
    weights_file="exemplar.pt",
    size_multiple=GRID,
    default_render_size=256,
    extra={"backbone": "efficientnet-lite0 (frozen)", "tau": TAU, "correlation_stride": GRID},
)


@register_model(INFO)
def build_exemplar(
    device: torch.device, dtype: torch.dtype = torch.float32, weights=None, ref_short_side: int | None = None,
    overlap: bool | None = None,
) -> ExemplarColorizer:
    """Build the exemplar colourizer with shipped (or given) weights, sha256-checked, strictly loaded.

    ``ref_short_side``: encode references at this short side; None = the frames' short side."""
    net = ExemplarNet()
    digest = load_weights(INFO.name, weights, net)
    backbone = FrozenBackbone(load_pretrained_backbone())
    return ExemplarColorizer(INFO, net, backbone, device, dtype, sha256=digest, ref_short_side=ref_short_side,
                             overlap=overlap)


# ------------------------------------------------------------------------------ training family


PERCEPTUAL_STRIDES = (8, 16)  # the paper's relu5_2 is VGG's stride 16


def smoothness_loss(ab: torch.Tensor, gt_ab: torch.Tensor, sigma: float = 0.05) -> torch.Tensor:
    """Paper eq. (11): |ab(i) - sum_j w_ij ab(j)| over the 8-neighbourhood, with edge-aware weights
    w_ij from the ground truth's chroma similarity (a Gaussian of the gt ab difference, normalised).
    ab, gt_ab: (N, 2, H, W) on a unit scale (ab / 128)."""
    shifts = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    pad_ab = F.pad(ab, (1, 1, 1, 1), mode="replicate")
    pad_gt = F.pad(gt_ab, (1, 1, 1, 1), mode="replicate")
    h, w = ab.shape[-2:]
    nbr_ab = torch.stack([pad_ab[..., 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy, dx in shifts], 0)
    nbr_gt = torch.stack([pad_gt[..., 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy, dx in shifts], 0)
    with torch.no_grad():
        wts = torch.softmax(-(nbr_gt - gt_ab).pow(2).sum(2, keepdim=True) / (2 * sigma**2), dim=0)
    return (ab - (wts * nbr_ab).sum(0)).abs().mean()


class ExemplarFamily:
    """What ``colorize train --model exemplar`` trains (see :mod:`colorize.training.family`)."""

    name = "exemplar"
    window = 3
    p_teacher = 0.3  # share of samples fed the ground-truth previous frame instead of their own output
    weights = {"l1": 1.0, "perceptual": 0.02, "smooth": 0.5, "temporal": 0.5, "rank": 0.1}
    rank_margin = 0.3

    def _ranking_loss(
        self, net: ExemplarNet, fused: torch.Tensor, ref: ReferenceCode, conf: torch.Tensor, related: torch.Tensor, t: int
    ) -> torch.Tensor:
        """Keep the mean confidence discriminative, since per-shot reference choice ranks by it: a
        frame must match its own (related) reference by ``rank_margin`` better than another clip's.
        fused, conf: (B*T, ...) frame-major per clip; related: (B,) bool."""
        b = ref.features.shape[0]
        if b < 2 or not bool(related.any()):
            return conf.new_zeros(())
        other = ReferenceCode(*(x.roll(1, 0).repeat_interleave(t, 0) for x in (ref.features, ref.ab)))
        _, conf_other = net.match(fused, other)
        gap = (conf.mean(dim=(1, 2, 3)) - conf_other.mean(dim=(1, 2, 3))).view(b, t)
        return F.relu(self.rank_margin - gap)[related].mean()

    def build_net(self) -> nn.Module:
        return ExemplarNet()

    def training_step(self, net: ExemplarNet, batch: "TrainBatch", backbone: FrozenBackbone, step: int) -> dict:
        from colorize.color.lab import lab_to_rgb, rgb_to_lab
        from colorize.training.losses import masked_l1, perceptual_distance, temporal_loss
        from colorize.training.reference_aug import UNRELATED, make_reference

        g = torch.Generator().manual_seed(0x5EED + 7919 * step)  # reproducible from the step (resume)
        lab = batch.lab
        b, t = lab.shape[:2]
        dev = lab.device
        l_all = lab[:, :, :1]
        ref_rgb, kind = make_reference(batch.rgb, batch.other_rgb, g)
        ref_lab = rgb_to_lab(ref_rgb)
        with torch.no_grad():
            feats = backbone(l_all.flatten(0, 1), strides=LEVELS, embed=False)
            ref_feats = backbone(ref_lab[:, :1], strides=LEVELS, embed=False)
        ref = net.encode_reference(ref_feats, ref_lab[:, 1:])  # once per clip, reused for every frame
        fused = net.corr(feats)  # (B*T, C, h, w)
        ref_bt = ReferenceCode(ref.features.repeat_interleave(t, 0), ref.ab.repeat_interleave(t, 0))
        warped, conf = net.match(fused, ref_bt)
        rank = self._ranking_loss(net, fused, ref, conf, kind.to(dev) != UNRELATED, t)
        fused, warped, conf = (x.unflatten(0, (b, t)) for x in (fused, warped, conf))
        # Teacher forcing for some samples, the net's own previous output (as at inference) for the rest.
        teacher = (torch.rand(b, generator=g) < self.p_teacher).to(dev).view(b, 1, 1, 1)
        outs = []
        for i in range(t):
            if i == 0:
                prev, first = torch.zeros_like(lab[:, 0]), torch.ones(b, device=dev)
            else:
                prev_ab = torch.where(teacher, lab[:, i - 1, 1:], outs[-1])
                prev, first = torch.cat((l_all[:, i - 1], prev_ab), 1), torch.zeros(b, device=dev)
            outs.append(net.color(l_all[:, i], warped[:, i], conf[:, i], prev, first, fused[:, i]))
        ab = torch.stack(outs, 1)
        ab_n, gt_n = ab / AB_SCALE, lab[:, :, 1:] / AB_SCALE

        def features(rgb: torch.Tensor) -> list[torch.Tensor]:
            out = backbone.net.features(normalize_rgb255(rgb * 255.0), strides=PERCEPTUAL_STRIDES, embed=False)
            return [out[s] for s in PERCEPTUAL_STRIDES]

        # Perceptual term on the window's last frame only (the one coloured after the longest
        # recurrence): the backbone's backward pass is ~40% of a step when taken on every frame.
        pred_rgb = lab_to_rgb(torch.cat((l_all[:, -1], ab[:, -1]), 1))
        terms = {
            "l1": masked_l1(ab_n, gt_n),
            "perceptual": perceptual_distance(features, pred_rgb, batch.rgb[:, -1]).mean(),
            "smooth": smoothness_loss(ab_n.flatten(0, 1), gt_n.flatten(0, 1)),
            "temporal": sum(
                (temporal_loss(ab_n[:, i + 1], ab_n[:, i], batch.flow[:, i], batch.valid[:, i]) for i in range(t - 1)),
                ab_n.new_zeros(()),
            ) / max(1, t - 1),
            "rank": rank,
        }
        out = {"loss": sum(self.weights[k] * v for k, v in terms.items())}
        out.update({k: v.detach() for k, v in terms.items()})
        out["confidence"] = conf.mean().detach()
        out["ref_unrelated"] = (kind == UNRELATED).float().mean()
        return out

    @torch.no_grad()
    def predict(self, net: ExemplarNet, lab: torch.Tensor, backbone: FrozenBackbone) -> torch.Tensor:
        """Validation in propagation mode: each window's first frame is the reference.
        lab (B, T, 3, H, W) -> ab (B, T, 2, H, W)."""
        b, t = lab.shape[:2]
        ref = net.encode_reference(backbone(lab[:, 0, :1], strides=LEVELS, embed=False), lab[:, 0, 1:])
        outs = []
        for i in range(t):
            if i == 0:
                prev, first = torch.zeros_like(lab[:, 0]), torch.ones(b, device=lab.device)
            else:
                prev, first = torch.cat((lab[:, i - 1, :1], outs[-1]), 1), torch.zeros(b, device=lab.device)
            feats = backbone(lab[:, i, :1], strides=LEVELS, embed=False)
            outs.append(net(lab[:, i, :1], feats, ref, prev, first)[0])
        return torch.stack(outs, 1)


FAMILY = ExemplarFamily()
