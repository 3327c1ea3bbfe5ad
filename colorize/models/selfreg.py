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

Training (``FAMILY``, used by ``colorize train``): ranked diversity loss over the d outputs, the
bilateral KNN self-regularization loss, the temporal loss of f along optical flow and the L1 loss
of g on neighbouring frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from colorize.models.backbone import EMBED_DIM, VARIANTS, FeatureSpec, FrozenBackbone, get_variant, load_pretrained_backbone
from colorize.models.base import ModelInfo, StreamColorizer
from colorize.models.layers import ABClassHead, ConvNormAct, Hypercolumn, PatchCritic, UpBlock, resize_to
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


class ColorizationNet(nn.Module):
    """f: L (N, 1, H, W) in [0, 100] + backbone features -> ab (N, d, 2, H, W) in [-128, 128].

    A four-level U-Net on L (strides 1, 2, 4, 8); the hypercolumn joins at stride 8, where the
    backbone's semantics live, and the decoder's skips bring the edges of L back. Channels grow
    as resolution falls so that every level costs about the same (~1.5 GFLOPs at 256x448 in all).
    H and W must be multiples of 8 (the backbone needs 32 anyway).
    """

    def __init__(self, num_outputs: int = NUM_DIVERSE, widths: tuple[int, ...] = (8, 16, 32, 64),
                 context: bool = False, classes: bool = False, backbone: str = "lite0") -> None:
        super().__init__()
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

    def forward(self, l: torch.Tensor, feats: dict, num: int | None = None) -> torch.Tensor:
        """``num``: compute only the first ``num`` outputs (inference with fewer candidates)."""
        num = self.num_outputs if num is None else num
        if not 1 <= num <= self.num_outputs:
            raise ValueError(f"num outputs must be in 1..{self.num_outputs}, got {num}")
        if self.cls is None:
            return self.parts(l, feats, num)[0]
        reg, logits = self.parts(l, feats, num - 1)
        return torch.cat((self.class_ab(logits, l)[:, None], reg), 1)

    def class_ab(self, logits: torch.Tensor, l: torch.Tensor, temperature: float | None = None) -> torch.Tensor:
        """The class head's ab (N, 2, H, W) at L's resolution (:meth:`ABClassHead.shown`)."""
        return self.cls.shown(logits, l, temperature)

    def parts(self, l: torch.Tensor, feats: dict, num_reg: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(regression outputs 0..num_reg-1 (N, num_reg, 2, H, W), class logits at stride 4 or None)."""
        e0 = self.enc0(l / 50.0 - 1.0)
        e1 = self.enc1(e0)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        hyper = self.hyper(feats, e3.shape[-2:])
        if self.context is not None:
            hyper = hyper + self.context(feats, e3.shape[-2:])
        hyper = self.hyper_act(hyper)
        x8 = self.mid(self.fuse(torch.cat((e3, hyper), 1)))
        x4 = self.up2(x8, e2)
        logits = None
        if self.cls is not None:
            up8 = F.interpolate(x8, size=x4.shape[-2:], mode="bilinear", align_corners=False)
            logits = self.cls(torch.cat((x4, up8), 1))
        if num_reg == 0:
            return l.new_zeros((l.shape[0], 0, 2, *l.shape[-2:])), logits
        x = self.up1(x4, e1)
        x = torch.cat((F.interpolate(x, size=e0.shape[-2:], mode="bilinear", align_corners=False), e0), 1)
        out = F.conv2d(x, self.head.weight[: 2 * num_reg], self.head.bias[: 2 * num_reg], padding=1)
        return torch.tanh(out).unflatten(1, (num_reg, 2)) * AB_SCALE, logits


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
                 backbone: str = "lite0", critic: bool = False) -> None:
        super().__init__()
        self.backbone_variant = backbone  # which EfficientNet-Lite's features f reads
        self.f = ColorizationNet(num_outputs, context=context, classes=classes, backbone=backbone)
        self.g = RefinementNet()
        self.critic = PatchCritic() if critic else None

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
    the file decides whether f has the context branch and the class head, and which backbone it reads."""
    return SelfRegNet(context=any(k.startswith("f.context.") for k in state),
                      classes=any(k.startswith("f.cls.") for k in state),
                      backbone=backbone_of(state))


def checkpoint_filter_fn(state: dict) -> dict:
    """Map a training checkpoint's state dict onto :class:`SelfRegNet` keys.

    Drops a ``module.`` (DataParallel) or ``net.`` prefix, any frozen-backbone keys, which are
    never part of the weights file, and the training-only critic of the adversarial term.
    """
    out = {}
    for key, value in state.items():
        for prefix in ("module.", "net."):
            if key.startswith(prefix):
                key = key[len(prefix):]
        if key.startswith(("backbone.", "critic.")):
            continue
        out[key] = value
    return out


# ---------------------------------------------------------------------------------------- inference


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
    ) -> None:
        d = net.f.num_outputs
        if not 1 <= int(diverse) <= d:
            raise ValueError(f"diverse must be between 1 and {d}, got {diverse}")
        if int(refine_passes) < 0:
            raise ValueError(f"refine_passes must be >= 0, got {refine_passes}")
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
        feats = self.backbone(l4, strides=BACKBONE_STRIDES, embed=True)
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

    @torch.inference_mode()
    def flush(self) -> list[tuple[int, torch.Tensor]]:
        out = self._advance(final=True)
        self._window.clear()  # the shot is over: the next frame starts without neighbours
        return out

    def reset(self) -> None:
        self._window.clear()
        self._last_index = None

    # -- internals

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
        refined = self.net.refine(
            ab_s.repeat(m, 1, 1, 1),
            torch.cat(ab_t),
            fr.l.expand(n * m, -1, -1, -1),
            torch.cat(l_t),
            torch.cat(flows),
            torch.cat(masks),
        )
        return refined.unflatten(0, (m, n)).mean(0)


# ---------------------------------------------------------------------------------------- training


class SelfRegFamily:
    """What ``colorize train --model selfreg`` trains (see :mod:`colorize.training.family`).

    window = 2: frame pairs (t, t+1) carry everything the losses need — the temporal loss of f and
    g's L1 loss with frame t as the neighbour of frame t+1.
    Per-output distance of the diversity loss: Huber on ab (unit scale, ab / 128); a
    ``perceptual_weight`` > 0 adds the paper's perceptual distance (backbone features at strides
    2..8 of the predicted vs. true RGB, back-propagated through the frozen backbone). The default
    is 0: on 2 CPU cores a step then costs ~2.5x less (batch 6 x 2 frames at 128 px), and the
    bilateral, temporal and refinement terms are unchanged. g is trained on one random head per
    sample and step, on detached outputs of f (f's colours are g's input, not its target).
    """

    name = "selfreg"
    window = 2

    def __init__(
        self,
        num_outputs: int = NUM_DIVERSE,
        betas: tuple[float, ...] | None = None,
        perceptual_weight: float = 0.0,
        bilateral_weight: float = 1.0,
        temporal_weight: float = 1.0,
        refine_weight: float = 1.0,
        knn_samples: int = 1024,
        knn_k: int = 5,
        knn_lambda: float = 1.0,
        gamut: int = 1,
        rebalance: float = 0.0,
        context: int = 0,
        classes: int = 0,
        class_weight: float = 0.05,
        lite2: int = 0,
        adversarial: float = 0.0,
        adv_crop: int = 64,
        perceptual_crop: int = 0,
    ) -> None:
        self.num_outputs = num_outputs
        # beta_0 = 1: output 0 is always fully supervised, the safe single answer that diverse=1
        # returns; the small betas of the others let them specialise on the samples they win
        # (with beta_0 = 0.25 a 200-step probe gave an output 0 as saturated as the truth but 2.6 dB
        # below the grey input on dev_eval).
        self.betas = betas if betas is not None else (1.0,) + tuple(0.1 * 0.5**i for i in range(num_outputs - 1))
        self.perceptual_weight = perceptual_weight
        # > 0: the perceptual distance reads one random perceptual_crop x perceptual_crop crop per
        # frame and step (the same for every output and the truth), at (crop / size)^2 of the cost.
        self.perceptual_crop = perceptual_crop
        self.bilateral_weight = bilateral_weight
        self.temporal_weight = temporal_weight
        self.refine_weight = refine_weight
        self.knn_samples = knn_samples
        self.knn_k = knn_k
        self.knn_lambda = knn_lambda
        # 1: the diversity distances compare the prediction *as it will be shown*, i.e. after
        # colorize.color.gamut.limit_chroma at the frame's L, so f spends no capacity on colours
        # that sRGB cannot show there (near black and white).
        self.gamut = gamut
        # > 0: Zhang et al.'s class rebalancing (lam) of the per-pixel distance
        # (colorize.training.rebalance); the trainer sets ``ab_weights`` from the training data.
        self.rebalance = rebalance
        self.ab_weights: torch.Tensor | None = None
        # 1: f gains the SemanticContext branch. A net without it can be the --init: the
        # branch's keys are then missing from the file and start as built (its output at zero).
        self.context = context
        # 1: f gains the ABClassHead (output 0 becomes its annealed mean), trained with
        # ``class_weight`` x the cross-entropy to Zhang's soft-encoded targets at stride 4
        # (rebalanced when ``rebalance`` > 0) and with the temporal loss on the ab it shows.
        self.classes = classes
        self.class_weight = class_weight
        # 1: f reads EfficientNet-Lite2's features instead of Lite0's (a new net: no --init).
        self.lite2 = lite2
        # > 0: weight of an adversarial term on the output that is shown (output 0, after the
        # gamut step): a PatchCritic trained alongside (hinge loss) judges one adv_crop x adv_crop
        # crop per frame and step, real (L, ab) against colourized (L, ab).
        self.adversarial = adversarial
        self.adv_crop = adv_crop

    @property
    def backbone_variant(self) -> str:
        return "lite2" if self.lite2 else "lite0"

    # Parameters an --init file may lack: the context branch (zero-started, so the net starts as
    # it was) and the class head (new; the regression heads keep working meanwhile).
    # The critic of the adversarial term starts fresh on any file.
    growth_prefixes = ("f.context.", "f.cls.", "critic.")

    def build_net(self) -> SelfRegNet:
        return SelfRegNet(self.num_outputs, context=bool(self.context), classes=bool(self.classes),
                          backbone=self.backbone_variant, critic=self.adversarial > 0)

    # What a feature cache stores for this family (colorize.training.feature_cache): the
    # hypercolumn reads strides 2..8 on the stride-8 grid, 16 and 32 on their own.
    feature_spec = FeatureSpec(grids=((2, 8), (4, 8), (8, 8), (16, 16), (32, 32)), embed=True)

    @property
    def knn_spec(self) -> tuple[int, int, float]:
        """The bilateral loss's neighbour search (k, samples, lam), which a feature cache runs once
        per sample (a quarter of a cached step's time when it ran every step)."""
        return (self.knn_k, self.knn_samples, self.knn_lambda)

    def _distances(self, pred: torch.Tensor, ab_gt: torch.Tensor, l: torch.Tensor) -> torch.Tensor:
        """Per-sample, per-output distance (BT, d) of pred (BT, d, 2, H, W) to ab_gt (BT, 2, H, W),
        unit scale, gamut-limited and rebalanced as configured."""
        from colorize.color.gamut import limit_chroma
        from colorize.training.losses import huber
        from colorize.training.rebalance import pixel_weights

        n, d = pred.shape[:2]
        flat = pred.flatten(0, 1)
        if self.gamut:
            flat = limit_chroma(l.repeat_interleave(d, 0), flat * AB_SCALE) / AB_SCALE
        weight = None
        if self.rebalance > 0:
            if self.ab_weights is None:
                raise ValueError("rebalance is on but no ab_weights were set (the trainer sets them)")
            weight = pixel_weights(ab_gt * AB_SCALE, self.ab_weights).repeat_interleave(d, 0)
        return huber(flat, ab_gt.repeat_interleave(d, 0), weight=weight).view(n, d)

    def training_step(self, net: SelfRegNet, batch, backbone: FrozenBackbone, step: int) -> dict[str, torch.Tensor]:
        from colorize.models.backbone import normalize_rgb255
        from colorize.training import losses

        lab, rgb = batch.lab, batch.rgb
        b, t, _, h, w = lab.shape
        if t < 2:
            raise ValueError(f"selfreg trains on frame pairs, got windows of {t}")
        l = lab[:, :, :1].flatten(0, 1)
        ab_gt = lab[:, :, 1:].flatten(0, 1) / AB_SCALE
        rgb_gt = rgb.flatten(0, 1)
        if batch.feats is not None:  # from a feature cache, already on f's grids
            feats = batch.feats
        else:
            with torch.no_grad():
                feats = backbone(l, strides=BACKBONE_STRIDES, embed=True)
        reg, logits = net.f.parts(l, feats, net.f.num_outputs)
        pred = reg / AB_SCALE  # (BT, d, 2, H, W), unit scale
        d = pred.shape[1]

        # Ranked diversity loss (eq. 7) over per-output distances.
        dists = self._distances(pred, ab_gt, l)
        gen = torch.Generator().manual_seed(int(step))
        if self.perceptual_weight > 0:
            def feature_fn(x_rgb):
                fs = backbone.net.features(normalize_rgb255(x_rgb * 255.0), strides=(2, 4, 8), embed=False)
                return [fs[s] for s in (2, 4, 8)]

            from colorize.color.lab import lab_to_rgb

            l_p, ab_p, rgb_p = l, pred.flatten(0, 1), rgb_gt
            if 0 < self.perceptual_crop < min(h, w):
                crop = _random_crop(self.perceptual_crop, h, w, gen)
                l_p, ab_p, rgb_p = crop(l_p), crop(ab_p), crop(rgb_p)
            l_rep = l_p.repeat_interleave(d, 0)
            rgb_pred = lab_to_rgb(torch.cat((l_rep, ab_p * AB_SCALE), 1))
            perc = losses.perceptual_distance(feature_fn, rgb_pred, rgb_p.repeat_interleave(d, 0))
            dists = dists + self.perceptual_weight * perc.view(-1, d)
        diversity = losses.ranked_diversity_loss(dists, self.betas)

        # Bilateral self-regularization (eq. 2), on every output at once.
        bilateral = losses.bilateral_loss(
            pred.flatten(1, 2), rgb_gt, k=self.knn_k, num_samples=self.knn_samples, lam=self.knn_lambda, generator=gen,
            pairs=batch.knn,
        )

        # Temporal regularization of f (eq. 3) along the batch's flow, and g on the same pairs (eq. 5).
        seq = pred.view(b, t, d * 2, h, w)
        l_seq = l.view(b, t, 1, h, w)
        # g sees one output pair per sample, a random head each step: over training it is trained
        # on every head (the paper trains g "on each pair of output") at 1/d of the cost.
        head = torch.randint(d, (b,), generator=gen).to(lab.device)
        pick = lambda x: x.view(b, d, 2, h, w)[torch.arange(b, device=lab.device), head]  # noqa: E731
        temporal, refine = 0.0, 0.0
        for i in range(t - 1):
            flow, valid = batch.flow[:, i], batch.valid[:, i]
            temporal = temporal + losses.temporal_loss(seq[:, i + 1], seq[:, i], flow, valid)
            ab_s = pick(seq[:, i + 1].detach()) * AB_SCALE
            ab_t = pick(seq[:, i].detach()) * AB_SCALE
            refined = net.refine(ab_s, ab_t, l_seq[:, i + 1], l_seq[:, i], flow, valid)
            refine = refine + losses.masked_l1(refined / AB_SCALE, lab[:, i + 1, 1:] / AB_SCALE)
        temporal = temporal / (t - 1)
        refine = refine / (t - 1)

        loss = (
            diversity
            + self.bilateral_weight * bilateral
            + self.temporal_weight * temporal
            + self.refine_weight * refine
        )
        extra = {}
        if logits is not None:
            classes, temporal_cls = self._class_losses(net, logits, l, ab_gt * AB_SCALE, batch, b, t)
            loss = loss + self.class_weight * classes + self.temporal_weight * temporal_cls
            extra = {"classes": classes.detach(), "temporal_cls": temporal_cls.detach()}
        if self.adversarial > 0:
            shown = net.f.class_ab(logits, l) if logits is not None else pred[:, 0] * AB_SCALE
            critic, adv = self._adversarial_losses(net, l, shown, ab_gt * AB_SCALE, gen)
            loss = loss + critic + self.adversarial * adv
            extra.update(critic=critic.detach(), adversarial=adv.detach())
        with torch.no_grad():
            ab_l1 = (pred[:, 0] - ab_gt).abs().mean() * AB_SCALE  # output 0, in ab units, for the log
        return {
            "loss": loss,
            "diversity": diversity.detach(),
            "bilateral": bilateral.detach(),
            "temporal": temporal.detach(),
            "refine": refine.detach(),
            "ab_l1": ab_l1,
            **extra,
        }

    def _adversarial_losses(self, net, l, shown, ab_gt, gen):
        """(critic's hinge loss, f's adversarial loss) on one random crop of every frame.

        The critic learns on the colourized crop detached; f's term runs the critic with its
        parameters out of the graph, so each loss moves only its own network and one backward
        pass of their sum trains both.
        """
        from colorize.color.gamut import limit_chroma

        if net.critic is None:
            raise ValueError("adversarial > 0 needs a net built with the critic")
        crop = _random_crop(self.adv_crop, *l.shape[-2:], gen)
        l_c = crop(l)
        fake = limit_chroma(l_c, crop(shown))  # as it will be shown
        real = limit_chroma(l_c, crop(ab_gt))  # the same step, so the limit itself tells nothing
        critic_loss = F.relu(1.0 - net.critic(l_c, real)).mean() + F.relu(1.0 + net.critic(l_c, fake.detach())).mean()
        params = list(net.critic.parameters())
        for p in params:
            p.requires_grad_(False)
        try:
            adv = -net.critic(l_c, fake).mean()
        finally:
            for p in params:
                p.requires_grad_(True)
        return critic_loss, adv

    def _class_losses(self, net, logits, l, ab_gt, batch, b, t):
        """Cross-entropy of the class head to the soft-encoded truth at its stride-4 grid, and the
        temporal loss of the ab it shows (annealed mean at the net's temperature) along the flow."""
        from colorize.training import losses

        if self.rebalance > 0 and self.ab_weights is None:
            raise ValueError("rebalance is on but no ab_weights were set (the trainer sets them)")
        ce = losses.class_cross_entropy(logits, ab_gt, net.f.cls.centres, self.ab_weights if self.rebalance > 0 else None)
        shown = (net.f.class_ab(logits, l) / AB_SCALE).view(b, t, 2, *l.shape[-2:])
        temporal = 0.0
        for i in range(t - 1):
            temporal = temporal + losses.temporal_loss(shown[:, i + 1], shown[:, i], batch.flow[:, i], batch.valid[:, i])
        return ce, temporal / (t - 1)

    @torch.no_grad()
    def predict(self, net: SelfRegNet, lab: torch.Tensor, backbone: FrozenBackbone) -> torch.Tensor:
        """Validation form: ab (B, T, 2, H, W) of output 0 of f for Lab windows (B, T, 3, H, W).

        No refinement: validation batches carry no flow, and f is what the losses mostly train.
        """
        l = lab[:, :, :1].flatten(0, 1)
        feats = backbone(l, strides=BACKBONE_STRIDES, embed=True)
        return net.f(l, feats, num=1)[:, 0].view(*lab.shape[:2], 2, *lab.shape[-2:])


def _random_crop(size: int, h: int, w: int, gen: torch.Generator):
    """A function cutting one size x size window (clamped to the frame), placed by ``gen``, from
    tensors (..., h, w): the same window for every tensor it is given."""
    c = min(size, h, w)
    y = int(torch.randint(h - c + 1, (1,), generator=gen))
    x = int(torch.randint(w - c + 1, (1,), generator=gen))
    return lambda z: z[..., y:y + c, x:x + c]


FAMILY = SelfRegFamily()


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
) -> SelfRegColorizer:
    """Build ``selfreg`` with the shipped weights (or a user-given file); never with random weights."""
    path, expected = resolve_weights("selfreg", weights)
    state, digest = load_state(path, expected)
    state = checkpoint_filter_fn(state)
    net = net_for(state)
    load_into(net, state, path)
    model = SelfRegColorizer(
        INFO,
        net,
        FrozenBackbone(load_pretrained_backbone(net.backbone_variant)),
        device,
        dtype,
        diverse=diverse,
        refine_passes=refine_passes,
        flow_preset=flow_preset,
    )
    model.weights_sha256 = digest
    return model
