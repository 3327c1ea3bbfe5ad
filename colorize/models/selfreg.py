"""``selfreg``: fully automatic video colourization with self-regularization and diversity.

Paper: Chenyang Lei & Qifeng Chen, *Fully Automatic Video Colorization with Self-Regularization
and Diversity* (CVPR 2019).

Two networks, as in the paper, scaled down to run on a CPU:

* the colourization net ``f``: a small U-Net on L whose bottleneck (stride 8) receives hypercolumn
  features of the frozen EfficientNet-Lite0 backbone (strides 2..32 plus the global embedding,
  reduced by a 1x1 conv — the stand-in for the paper's VGG-19 hypercolumns), with ``d`` diverse ab
  outputs through ``tanh * 128``;
* the refinement net ``g``: inputs the current colours C^s, a neighbour's colours warped into
  frame s, the confidence maps W(C^t->s, C^s) and W(X^t->s, X^s) (eq. 4, alpha = 15) and L^s;
  it predicts, at half resolution, how much to trust the warped neighbour per pixel and blends
  it into C^s (see :class:`RefinementNet` for why a blend rather than a free output). At
  inference each frame is refined with its left and right neighbours (the two results are
  averaged), ``refine_passes`` times.

Training (``FAMILY``, used by ``colorize train``, in :mod:`colorize.models.selfreg_family`):
ranked diversity loss over the d outputs, the bilateral KNN self-regularization loss, the temporal
loss of f along optical flow and the L1 loss of g on neighbouring frames.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace

import torch
from torch import nn
from torch.nn import functional as F

from colorize.models.backbone import (
    EMBED_DIM,
    VARIANTS,
    EfficientNetLite,
    FrozenBackbone,
    get_variant,
    load_pretrained_backbone,
    semantic_input,
)
from colorize.models.base import ModelInfo, StreamColorizer
from colorize.models.layers import ABClassHead, ConvNormAct, Hypercolumn, ModeSelector, UpBlock, resize_to
from colorize.models.overlap import FeaturesAhead
from colorize.models.registry import load_into, load_state, register_model, resolve_weights
from colorize.flow import confidence_map, dis_flow_pair, l_to_uint8, warp

AB_SCALE = 128.0
NUM_DIVERSE = 4  # the paper's d
ALPHA = 15.0  # confidence sensitivity, eq. (4)
BACKBONE_STRIDES = (2, 4, 8, 16, 32)


# ---------------------------------------------------------------------------------------- networks


class SemanticContext(nn.Module):
    """A wide, non-linear path from the backbone's deepest features to f's bottleneck.

    The hypercolumn reaches f through one linear 1x1 reduction to f's 64 bottleneck channels;
    deciding "sky, so blue" from ~1,900 backbone channels through a 64-wide linear map is the
    narrowest point of the net. This branch reads the stride-16 and stride-32 maps and the
    global embedding, mixes them in ``width`` channels with two 3x3 convs on the stride-16 grid
    (a quarter of the bottleneck's positions, so it stays cheap: ~0.33 GMAC at 256x448), and
    adds a 1x1 projection to the hypercolumn before its activation. The projection starts at
    zero, so a net that gains the branch starts as the net it was.
    """

    def __init__(self, out_channels: int, width: int = 192, backbone: str = "lite0") -> None:
        super().__init__()
        blocks = get_variant(backbone).feature_blocks
        c16, c32 = blocks[16][1], blocks[32][1]
        self.reduce = nn.Conv2d(c16 + c32, width, 1, bias=False)
        self.embed = nn.Linear(EMBED_DIM, width, bias=False)
        self.act = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        self.body = nn.Sequential(ConvNormAct(width, width), ConvNormAct(width, width, dilation=2))
        self.out = nn.Conv2d(width, out_channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, feats: dict, size: tuple[int, int]) -> torch.Tensor:
        f16 = feats[16]
        x = torch.cat((f16, resize_to(feats[32], f16.shape[-2:])), 1)
        x = self.reduce(x) + self.embed(feats["embed"])[:, :, None, None]
        return resize_to(self.out(self.body(self.act(x))), size)


# f's channels at strides 1, 2, 4 and 8 (the shipped file's). A file may carry other widths (the
# family's width_s4 / width_s8 options); net_for reads them from its shapes.
F_WIDTHS = (8, 16, 32, 64)


def widths_of(state: dict) -> tuple[int, ...]:
    """f's channel widths in a state dict (after :func:`checkpoint_filter_fn`), from its encoder
    convolutions; the shipped widths where they are absent (the strict load reports that)."""
    keys = [f"f.enc{i}.0.weight" for i in range(4)]
    if not all(k in state for k in keys):
        return F_WIDTHS
    return tuple(int(state[k].shape[0]) for k in keys)


class ColorizationNet(nn.Module):
    """f: L (N, 1, H, W) in [0, 100] + backbone features -> ab (N, d, 2, H, W) in [-128, 128].

    A four-level U-Net on L (strides 1, 2, 4, 8); the hypercolumn joins at stride 8, where the
    backbone's semantics live, and the decoder's skips bring the edges of L back. Channels grow
    as resolution falls so that every level costs about the same (~1.5 GFLOPs at 256x448 in all).
    H and W must be multiples of 8 (the backbone needs 32 anyway).
    """

    def __init__(self, num_outputs: int = NUM_DIVERSE, widths: tuple[int, ...] = F_WIDTHS,
                 context: bool = False, classes: bool = False, backbone: str = "lite0",
                 select: bool = False) -> None:
        super().__init__()
        if classes and select:
            raise ValueError("f shows either the class head's colour or the mode selector's, not both")
        c0, c1, c2, c3 = widths
        blocks = get_variant(backbone).feature_blocks
        self.num_outputs = num_outputs
        self.enc0 = ConvNormAct(1, c0)
        self.enc1 = ConvNormAct(c0, c1, stride=2)
        self.enc2 = ConvNormAct(c1, c2, stride=2)
        self.enc3 = ConvNormAct(c2, c3, stride=2)
        self.hyper = Hypercolumn({s: blocks[s][1] for s in BACKBONE_STRIDES}, c3, EMBED_DIM)
        self.context = SemanticContext(c3, backbone=backbone) if context else None
        self.hyper_act = nn.Sequential(nn.BatchNorm2d(c3), nn.ReLU(inplace=True))
        self.fuse = ConvNormAct(2 * c3, c3, k=1)
        self.mid = nn.Sequential(ConvNormAct(c3, c3), ConvNormAct(c3, c3, dilation=2), ConvNormAct(c3, c3))
        self.up2 = UpBlock(c3, c2, c2)
        self.up1 = UpBlock(c2, c1, c1)
        # Full resolution is the costly level: the head reads the upsampled decoder features and
        # the full-resolution L features directly, with no conv of its own in between.
        self.head = nn.Conv2d(c1 + c0, 2 * num_outputs, 3, padding=1)
        # With the class head, output 0 is its annealed mean and outputs 1.. are regression heads
        # 0.. (the last regression head is then trained but never shown).
        self.cls = ABClassHead(c2 + c3) if classes else None
        # With the mode selector, output 0 is its mixture of all d regression outputs (the others
        # stay as they are for --diverse), read from the same stride-4 features as the class head.
        self.select = ModeSelector(c2 + c3, num_outputs) if select else None
        # A calibration of the shown chroma, chosen after training on validation clips
        # (benchmarks/chroma_gain.py) and carried by the weights file: regression to ab under
        # uncertainty shrinks chroma towards the grey-brown mean, and a gain > 1 gives some of it
        # back (the gamut step downstream keeps the result showable). Training never applies it.
        self.register_buffer("chroma_gain", torch.tensor(1.0))

    def forward(self, l: torch.Tensor, feats: dict, num: int | None = None) -> torch.Tensor:
        """``num``: compute only the first ``num`` outputs (inference with fewer candidates)."""
        num = self.num_outputs if num is None else num
        if not 1 <= num <= self.num_outputs:
            raise ValueError(f"num outputs must be in 1..{self.num_outputs}, got {num}")
        if self.select is not None:
            reg, sel = self.selected_parts(l, feats)
            out = torch.cat((self.select.mix(sel, reg)[:, None], reg[:, 1:num]), 1)
        elif self.cls is None:
            out = self.parts(l, feats, num)[0]
        else:
            reg, logits = self.parts(l, feats, num - 1)
            out = torch.cat((self.class_ab(logits, l)[:, None], reg), 1)
        return out * self.chroma_gain.to(out.dtype)

    def class_ab(self, logits: torch.Tensor, l: torch.Tensor, temperature: float | None = None) -> torch.Tensor:
        """The class head's ab (N, 2, H, W) at L's resolution (:meth:`ABClassHead.shown`)."""
        return self.cls.shown(logits, l, temperature)

    def parts(self, l: torch.Tensor, feats: dict, num_reg: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(regression outputs 0..num_reg-1 (N, num_reg, 2, H, W), class logits at stride 4 or None)."""
        e0, e1, x4, x8 = self.trunk(l, feats)
        logits = self.cls(self.stride4_features(x4, x8)) if self.cls is not None else None
        return self.decode(e0, e1, x4, num_reg), logits

    def selected_parts(self, l: torch.Tensor, feats: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(all d regression outputs (N, d, 2, H, W), the mode selector's logits at stride 4)."""
        e0, e1, x4, x8 = self.trunk(l, feats)
        return self.decode(e0, e1, x4, self.num_outputs), self.select(self.stride4_features(x4, x8))

    def trunk(self, l: torch.Tensor, feats: dict) -> tuple[torch.Tensor, ...]:
        """Encoder, hypercolumn and the first decoder level: (e0, e1, x4, x8)."""
        e0 = self.enc0(l / 50.0 - 1.0)
        e1 = self.enc1(e0)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        hyper = self.hyper(feats, e3.shape[-2:])
        if self.context is not None:
            hyper = hyper + self.context(feats, e3.shape[-2:])
        hyper = self.hyper_act(hyper)
        x8 = self.mid(self.fuse(torch.cat((e3, hyper), 1)))
        return e0, e1, self.up2(x8, e2), x8

    @staticmethod
    def stride4_features(x4: torch.Tensor, x8: torch.Tensor) -> torch.Tensor:
        """What the class head and the mode selector read: stride-4 decoder features and the
        stride-8 ones brought up to them."""
        up8 = F.interpolate(x8, size=x4.shape[-2:], mode="bilinear", align_corners=False)
        return torch.cat((x4, up8), 1)

    def decode(self, e0: torch.Tensor, e1: torch.Tensor, x4: torch.Tensor, num_reg: int) -> torch.Tensor:
        """The first ``num_reg`` regression outputs (N, num_reg, 2, H, W) from the trunk's maps."""
        if num_reg == 0:
            return e0.new_zeros((e0.shape[0], 0, 2, *e0.shape[-2:]))
        x = self.up1(x4, e1)
        x = torch.cat((F.interpolate(x, size=e0.shape[-2:], mode="bilinear", align_corners=False), e0), 1)
        out = F.conv2d(x, self.head.weight[: 2 * num_reg], self.head.bias[: 2 * num_reg], padding=1)
        return torch.tanh(out).unflatten(1, (num_reg, 2)) * AB_SCALE


class TunedTop(nn.Module):
    """A trainable copy of the backbone's deep end: its blocks after stride 8 (the stride-16 and
    stride-32 stages) and its 1x1 head, started from the ImageNet weights.

    The frozen backbone then runs only up to stride 8 and this copy computes the stride-16/32 maps
    and the global embedding from there, so the semantics f reads can adapt to colour (the papers
    train their encoders; the frozen Lite0 features were what every cure topped out on). Same
    compute as the frozen backbone's own deep end. BatchNorm keeps the ImageNet statistics (eval
    mode always): training batches of a few 4x4 maps would give noisy ones. A weights file with
    ``top.`` keys carries these weights (about 3.3 M parameters for Lite0).
    """

    def __init__(self, variant: str = "lite0", pretrained: bool = True) -> None:
        super().__init__()
        ref = load_pretrained_backbone(variant) if pretrained else EfficientNetLite(variant)
        blocks = ref.feature_blocks
        first = blocks[8][0] + 1
        self.at = {blocks[16][0] - first: 16, blocks[32][0] - first: 32}
        self.blocks = copy.deepcopy(ref._blocks[first:])
        self.conv_head = copy.deepcopy(ref._conv_head)
        self.bn1 = copy.deepcopy(ref._bn1)
        self.requires_grad_(True)
        self.train(False)

    def train(self, mode: bool = True) -> "TunedTop":
        super().train(mode)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self

    def forward(self, f8: torch.Tensor) -> dict:
        """{16: map, 32: map, "embed": (N, 1280)} from the backbone's stride-8 map."""
        out: dict = {}
        y = f8
        for i, block in enumerate(self.blocks):
            y = block(y)
            if i in self.at:
                out[self.at[i]] = y
        out["embed"] = F.relu6(self.bn1(self.conv_head(y))).mean(dim=(2, 3))
        return out


class RefinementNet(nn.Module):
    """g: refine C^s with one neighbour C^t already warped into frame s.

    Inputs (N, ., H, W): ab_s, ab_t_warped (ab units), conf_c, conf_x (in [0, 1]), l_s (L 0..100),
    mask (1 = the neighbour's pixel is visible). Returns refined ab (N, 2, H, W).

    Unlike the paper's g, which synthesises the refined frame, this g predicts a per-pixel gate
    (at half resolution) and returns the convex blend ``C^s + gate * mask * (C^t->s - C^s)``. A
    first version that added a free residual to C^s *raised* the flicker of a probe model on
    dev_eval (warp-error ratio 0.49 without refinement, 0.86 with one pass, 1.17 with two): the
    L1-to-ground-truth loss let it re-colour each frame on its own. A blend of motion-compensated
    neighbours can only propagate colours along the flow, which is the refinement's purpose.
    H and W must be multiples of 8.
    """

    def __init__(self, widths: tuple[int, int, int] = (16, 24, 48)) -> None:
        super().__init__()
        c0, c1, c2 = widths
        self.enc0 = ConvNormAct(7, c0, stride=2)
        self.enc1 = ConvNormAct(c0, c1, stride=2)
        self.enc2 = ConvNormAct(c1, c2, stride=2)
        self.mid = nn.Sequential(ConvNormAct(c2, c2, dilation=2), ConvNormAct(c2, c2))
        self.up1 = UpBlock(c2, c1, c1)
        self.up0 = UpBlock(c1, c0, c0 // 2)
        self.out = nn.Conv2d(c0 // 2, 1, 3, padding=1)
        nn.init.zeros_(self.out.weight)  # an untrained g blends half-half where the flow is valid
        nn.init.zeros_(self.out.bias)

    def gate(self, ab_s, ab_t_warped, conf_c, conf_x, l_s) -> torch.Tensor:
        """Blend weight of the neighbour (N, 1, H, W) in [0, 1], before the visibility mask."""
        x = torch.cat((ab_s / AB_SCALE, ab_t_warped / AB_SCALE, conf_c, conf_x, l_s / 50.0 - 1.0), 1)
        e0 = self.enc0(x)
        e1 = self.enc1(e0)
        logit = self.out(self.up0(self.up1(self.mid(self.enc2(e1)), e1), e0))
        return torch.sigmoid(F.interpolate(logit, size=ab_s.shape[-2:], mode="bilinear", align_corners=False))

    def forward(self, ab_s, ab_t_warped, conf_c, conf_x, l_s, mask) -> torch.Tensor:
        w = self.gate(ab_s, ab_t_warped, conf_c, conf_x, l_s) * mask
        return ab_s + w * (ab_t_warped - ab_s)


class SelfRegNet(nn.Module):
    """The trainable parameters of ``selfreg`` (what the weights file holds): f and g, and while
    training with the adversarial term the critic (``critic``), which no weights file keeps."""

    def __init__(self, num_outputs: int = NUM_DIVERSE, context: bool = False, classes: bool = False,
                 backbone: str = "lite0", critic: bool = False, select: bool = False,
                 tune_top: bool = False, top_from_imagenet: bool = True,
                 widths: tuple[int, ...] = F_WIDTHS) -> None:
        super().__init__()
        self.backbone_variant = backbone  # which EfficientNet-Lite's features f reads
        self.f = ColorizationNet(num_outputs, widths=widths, context=context, classes=classes,
                                 backbone=backbone, select=select)
        self.g = RefinementNet()
        # Trained copy of the backbone past stride 8 (--set tune_top=1); None: f reads the frozen one.
        # top_from_imagenet=False when a weights file is about to supply it (no second read of
        # the ImageNet file at model load).
        self.top = TunedTop(backbone, pretrained=top_from_imagenet) if tune_top else None
        # The size at which the frozen backbone reads L, relative to f's, carried by the file (1 in
        # older files; see semantic_input): the scale f was trained at (the family's
        # semantic_scale), or a calibration chosen afterwards on validation clips
        # (benchmarks/chroma_gain.py --semantic-scales).
        self.register_buffer("semantic_scale", torch.tensor(1.0))
        # The working size (short side, pixels) the file was calibrated at, which the pipeline and
        # colorize eval use unless --render-size says otherwise; 0 = the family's default (256).
        # With a semantic scale the two sizes trade: f at 192 px with the backbone at 1.5x (288 px)
        # ran at about the speed of f and the backbone at 256 px (at 2x it was clearly slower).
        self.register_buffer("render_size", torch.tensor(0))
        self.critic = None
        if critic:  # training only (colorize train --set adversarial=w); never in a weights file
            from colorize.training.critic import PatchCritic

            self.critic = PatchCritic()

    @property
    def backbone_strides(self) -> tuple[tuple[int, ...], bool]:
        """(strides, embed) to ask of the frozen backbone: up to stride 8 when the net carries its
        own deep end."""
        return ((2, 4, 8), False) if self.top is not None else (BACKBONE_STRIDES, True)

    def semantic(self, feats: dict) -> dict:
        """The features f reads: the frozen backbone's, with the tuned deep end's maps and embedding
        in place of its own when the net has one."""
        if self.top is None:
            return feats
        return {**feats, **self.top(feats[8])}

    def refine(
        self,
        ab_s: torch.Tensor,
        ab_t: torch.Tensor,
        l_s: torch.Tensor,
        l_t: torch.Tensor,
        flow_st: torch.Tensor,
        mask_s: torch.Tensor,
        alpha: float = ALPHA,
    ) -> torch.Tensor:
        """g with neighbour t: warp C^t and X^t into frame s, build both confidence maps, refine.

        ab_*: (N, 2, H, W); l_*: (N, 1, H, W); flow_st (N, 2, H, W) maps s into t; mask_s (N, 1, H, W).
        """
        ab_w, l_w = warp(torch.cat((ab_t, l_t), 1), flow_st).split((2, 1), 1)
        conf_c = confidence_map(ab_s / AB_SCALE, ab_w / AB_SCALE, mask_s, alpha)
        conf_x = confidence_map(l_s / 100.0, l_w / 100.0, mask_s, alpha)
        return self.g(ab_s, ab_w, conf_c, conf_x, l_s, mask_s)


def backbone_of(state: dict) -> str:
    """The backbone variant a state dict was trained on, from the width of its stride-8 input."""
    key = "f.hyper.reduce.8.weight"
    if key not in state:
        return "lite0"  # let the strict load report what is missing
    width = state[key].shape[1]
    for name, variant in VARIANTS.items():
        if variant.feature_blocks[8][1] == width:
            return name
    return "lite0"


def net_for(state: dict) -> SelfRegNet:
    """An untrained :class:`SelfRegNet` shaped like ``state`` (after :func:`checkpoint_filter_fn`):
    the file decides whether f has the context branch, the class head or the mode selector, whether
    the net carries a tuned deep end of the backbone (left unloaded: the file supplies it), which
    backbone it reads, and f's channel widths."""
    return SelfRegNet(context=any(k.startswith("f.context.") for k in state),
                      classes=any(k.startswith("f.cls.") for k in state),
                      backbone=backbone_of(state),
                      select=any(k.startswith("f.select.") for k in state),
                      tune_top=any(k.startswith("top.") for k in state),
                      top_from_imagenet=False,
                      widths=widths_of(state))


def checkpoint_filter_fn(state: dict) -> dict:
    """Map a training checkpoint's state dict onto :class:`SelfRegNet` keys.

    Drops a ``module.`` (DataParallel) or ``net.`` prefix, any frozen-backbone keys, which are
    never part of the weights file, and the training-only critic of the adversarial term; a file
    from before the chroma calibration gets the neutral gain 1, and one from before the semantic
    scale the scale 1.
    """
    out = {}
    for key, value in state.items():
        for prefix in ("module.", "net."):
            if key.startswith(prefix):
                key = key[len(prefix):]
        if key.startswith(("backbone.", "critic.")):
            continue
        out[key] = value
    if out and "f.chroma_gain" not in out:  # files from before the calibration: no gain
        out["f.chroma_gain"] = torch.tensor(1.0)
    if out and "semantic_scale" not in out:  # files from before it: the backbone reads f's size
        out["semantic_scale"] = torch.tensor(1.0)
    if out and "render_size" not in out:  # and the family's working size
        out["render_size"] = torch.tensor(0)
    return out


# ---------------------------------------------------------------------------------------- inference


# The refine net g runs at this share of the working size (its correction upsampled onto f's
# colours). On dev_eval at half size: +1.83 dB / colour 0.665 / flicker 0.68, the same as at full
# size (0.66 flicker), with the model stage about 10 % faster (g was 42 ms of ~180 at 256x448).
REFINE_SCALE = 0.5


@dataclass
class _Frame:
    index: int
    l: torch.Tensor  # (1, 1, H, W)
    grey: object  # uint8 (H, W) for DIS
    stages: list = field(default_factory=list)  # colours after 0..P refine passes, (N, 2, H, W)
    next_flow: tuple | None = None  # (flow self->next, mask on self's grid)
    prev_flow: tuple | None = None  # (flow self->prev, mask on self's grid)
    emitted: bool = False


class SelfRegColorizer(StreamColorizer):
    """Stream wrapper: f per frame, then ``refine_passes`` passes of g with both neighbours.

    Pass k of frame t needs pass k-1 of frames t-1 and t+1, so frame t is emitted once frame
    t + refine_passes has arrived (one frame of look-ahead for the default single pass), or at
    :meth:`flush`. ``diverse=N`` returns the first N of the d outputs (output 0 is the one the
    ranked loss trains hardest, the best single answer).

    ``overlap``: the frozen backbone of frame t runs in a worker thread while this thread runs f,
    the flow and g of frame t-1, so one frame more is held back. On a CPU whose torch threads
    leave a core to the decode and encode threads (``pipeline.device.cpu_threads``), those threads
    need only a fraction of it, and the backbone (about half the model's time) fills the rest.
    ``None`` (default): on when the device is a CPU, torch runs one thread and there is another
    usable core (as ``colorize`` sets it up on two cores).
    The colours are the same either way; only when they are returned changes.
    """

    def __init__(
        self,
        info: ModelInfo,
        net: SelfRegNet,
        backbone: FrozenBackbone,
        device: torch.device,
        dtype: torch.dtype = torch.float32,
        diverse: int = 1,
        refine_passes: int = 1,
        flow_preset: str = "ultrafast",
        refine_scale: float = REFINE_SCALE,
        overlap: bool | None = None,
    ) -> None:
        d = net.f.num_outputs
        if not 1 <= int(diverse) <= d:
            raise ValueError(f"diverse must be between 1 and {d}, got {diverse}")
        if int(refine_passes) < 0:
            raise ValueError(f"refine_passes must be >= 0, got {refine_passes}")
        if not 0.0 < float(refine_scale) <= 1.0:
            raise ValueError(f"refine_scale must be in (0, 1], got {refine_scale}")
        self.refine_scale = float(refine_scale)
        self.info = info
        self.device = torch.device(device)
        self.dtype = dtype
        # channels_last: oneDNN's (and cuDNN's) fast layout for these thin convs, ~1.3x on a CPU.
        self.net = net.to(self.device, dtype, memory_format=torch.channels_last).eval()
        self.backbone = backbone.to(self.device, dtype, memory_format=torch.channels_last).eval()
        self.num_outputs = int(diverse)
        self.refine_passes = int(refine_passes)
        self.flow_preset = flow_preset
        self._window: list[_Frame] = []
        self._last_index: int | None = None
        self._ahead = FeaturesAhead(self.device, overlap, name="selfreg-backbone")
        self.overlap = self._ahead.enabled

    # -- public interface

    @torch.inference_mode()
    def push(self, index: int, l: torch.Tensor) -> list[tuple[int, torch.Tensor]]:
        if l.dim() != 3 or l.shape[0] != 1:
            raise ValueError(f"expected L of shape (1, H, W), got {tuple(l.shape)}")
        h, w = l.shape[-2:]
        m = self.size_multiple
        if h % m or w % m:
            raise ValueError(f"frame size {w}x{h} is not a multiple of {m}")
        if self._last_index is not None and index <= self._last_index:
            raise ValueError(f"frame indices must increase: got {index} after {self._last_index}")
        self._last_index = index
        l4 = l[None].to(self.device, self.dtype).contiguous(memory_format=torch.channels_last)
        frame = _Frame(index=index, l=l4, grey=l_to_uint8(l))
        out = []
        for ready, feats in self._ahead.push(frame, self._features, l4):
            out += self._colour(ready, feats)
        return out

    @torch.inference_mode()
    def flush(self) -> list[tuple[int, torch.Tensor]]:
        out = []
        for ready, feats in self._ahead.drain():
            out += self._colour(ready, feats)
        out += self._advance(final=True)
        self._window.clear()  # the shot is over: the next frame starts without neighbours
        return out

    def reset(self) -> None:
        self._ahead.clear()
        self._window.clear()
        self._last_index = None

    # -- internals

    def _features(self, l4: torch.Tensor) -> dict:
        strides, embed = self.net.backbone_strides
        l_sem = semantic_input(l4, float(self.net.semantic_scale), self.size_multiple)
        return self.net.semantic(self.backbone(l_sem, strides=strides, embed=embed))

    def _colour(self, frame: _Frame, feats: dict) -> list[tuple[int, torch.Tensor]]:
        """f on a frame whose features are ready, the flow to the frame before, and whatever the
        refine passes can now finish."""
        l4 = frame.l
        frame.stages.append(self.net.f(l4, feats, num=self.num_outputs)[0])
        if self._window and self.refine_passes > 0:
            prev = self._window[-1]
            if prev.l.shape != l4.shape:
                raise ValueError("frame size changed within a shot; call flush() and reset() first")
            f_pn, f_np, m_p, m_n = dis_flow_pair(prev.grey, frame.grey, self.device, self.dtype, self.flow_preset)
            prev.next_flow = (f_pn, m_p)
            frame.prev_flow = (f_np, m_n)
        self._window.append(frame)
        return self._advance(final=False)

    def _advance(self, final: bool) -> list[tuple[int, torch.Tensor]]:
        win = self._window
        progressed = True
        while progressed:
            progressed = False
            for p, fr in enumerate(win):
                k = len(fr.stages)  # next pass to compute
                if k > self.refine_passes:
                    continue
                left = win[p - 1] if p > 0 else None
                right = win[p + 1] if p + 1 < len(win) else None
                if right is None and not final:
                    continue
                if left is not None and len(left.stages) < k:
                    continue
                if right is not None and len(right.stages) < k:
                    continue
                fr.stages.append(self._refine(fr, left, right, k - 1))
                progressed = True
        out = []
        for fr in win:
            if len(fr.stages) <= self.refine_passes:
                break
            if not fr.emitted:
                out.append((fr.index, fr.stages[-1].clamp(-AB_SCALE, AB_SCALE).float()))
                fr.emitted = True
        # Keep a frame while its right neighbour still needs it for a pass.
        while len(win) >= 2 and win[0].emitted and win[1].emitted:
            win.pop(0)
        if self.refine_passes == 0:
            win.clear()  # no neighbours needed
        return out

    def _refine(self, fr: _Frame, left: _Frame | None, right: _Frame | None, stage: int) -> torch.Tensor:
        ab_s = fr.stages[stage]
        n = ab_s.shape[0]
        ab_t, l_t, flows, masks = [], [], [], []
        for nb, link in ((left, fr.prev_flow), (right, fr.next_flow)):
            if nb is None or link is None:
                continue
            ab_t.append(nb.stages[stage])
            l_t.append(nb.l.expand(n, -1, -1, -1))
            flows.append(link[0].expand(n, -1, -1, -1))
            masks.append(link[1].expand(n, -1, -1, -1))
        if not ab_t:  # a shot of one frame: nothing to refine with
            return ab_s
        m = len(ab_t)
        inputs = (ab_s.repeat(m, 1, 1, 1), torch.cat(ab_t), fr.l.expand(n * m, -1, -1, -1), torch.cat(l_t),
                  torch.cat(flows), torch.cat(masks))
        h, w = ab_s.shape[-2:]
        size = (round(h * self.refine_scale), round(w * self.refine_scale))
        if self.refine_scale == 1.0 or min(size) < 8:
            refined = self.net.refine(*inputs)
        else:
            # g at refine_scale of the working size: its correction of the colours is smooth (it
            # blends in the neighbours' colours where they agree), so it is computed on the smaller
            # grid and upsampled onto f's colours. Flow in pixels scales with the grid; a cell is
            # visible only where all it covers is.
            down = lambda x: F.interpolate(x, size=size, mode="area")  # noqa: E731
            src, nbr, l_s, l_n, flow, mask = inputs
            small = down(src)
            out = self.net.refine(small, down(nbr), down(l_s), down(l_n), down(flow) * self.refine_scale,
                                  (down(mask.float()) > 0.999).to(mask.dtype))
            refined = src + F.interpolate(out - small, size=(h, w), mode="bilinear", align_corners=False)
        return refined.unflatten(0, (m, n)).mean(0)


# ---------------------------------------------------------------------------------------- registry


INFO = ModelInfo(
    name="selfreg",
    summary="automatic; U-Net + backbone hypercolumns, d=4 diverse outputs, temporal refinement net",
    paper="Lei & Chen, Fully Automatic Video Colorization with Self-Regularization and Diversity, CVPR 2019",
    supports_diverse=True,
    weights_file="selfreg.pt",
    size_multiple=32,
    default_render_size=256,
    extra={"max_diverse": NUM_DIVERSE, "lookahead": "refine_passes frames"},
)


@register_model(INFO)
def selfreg(
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    weights=None,
    diverse: int = 1,
    refine_passes: int = 1,
    flow_preset: str = "ultrafast",
    refine_scale: float = REFINE_SCALE,
    overlap: bool | None = None,
) -> SelfRegColorizer:
    """Build ``selfreg`` with the shipped weights (or a user-given file); never with random weights."""
    path, expected = resolve_weights("selfreg", weights)
    state, digest = load_state(path, expected)
    state = checkpoint_filter_fn(state)
    net = net_for(state)
    load_into(net, state, path)
    render = int(net.render_size)
    model = SelfRegColorizer(
        replace(INFO, default_render_size=render) if render > 0 else INFO,
        net,
        FrozenBackbone(load_pretrained_backbone(net.backbone_variant)),
        device,
        dtype,
        diverse=diverse,
        refine_passes=refine_passes,
        flow_preset=flow_preset,
        refine_scale=refine_scale,
        overlap=overlap,
    )
    model.weights_sha256 = digest
    return model


def __getattr__(name: str):
    """``FAMILY`` and ``SelfRegFamily`` (what ``colorize train`` trains) live in
    :mod:`colorize.models.selfreg_family`, loaded on first use so that inference never imports it."""
    if name in ("FAMILY", "SelfRegFamily"):
        from colorize.models import selfreg_family

        return getattr(selfreg_family, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
