"""``lstm``: FlowChroma — automatic video colourization with a recurrent memory.

Paper: Wijesinghe, Abeysinghe, Wijayakoon, Jayathilake & Thayasivam, *FlowChroma - A Deep Recurrent
Neural Network for Video Colorization* (ICIAR 2020).

Per frame: a CNN encoder on L (stride 8) whose output is fused with the frozen backbone's spatial
features (EfficientNet-Lite0 stands in for Inception-ResNet-v2, and its stride-8/16/32 maps give the
small encoder the semantics it could not learn from ~1,600 photos on a CPU); the backbone's global
embedding; a 2-layer LSTM (hidden 256) over the global-average-pooled encoder features of a window
of T frames; the fusion layer (global and LSTM vectors replicated over the H/8 x W/8 grid and
concatenated with the encoder map); a decoder upsampling to ab through tanh. Trained with MSE on ab,
as in the paper, plus a temporal term (L1 between consecutive predicted frames along the batch's
optical flow, occlusion-masked, as in Lei & Chen eq. 3): MSE alone let the flicker grow with
training (warp-error ratio 0.45 -> 1.19 on dev_eval); fine-tuning with the term at weight 0.1
brought it back to 1.10 at the same PSNR. The stride-32 input came last (zero-initialised, so the
fine-tune started from the trained function): with crops that zoom in on the photos it gave
+2.06 -> +2.13 dB and flicker 1.10 -> 0.92.

Inference is a sliding window: frame t is coloured with its T-1 predecessors in the same shot;
``reset()`` (a scene cut or a new file) empties the window.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F

from colorize.models.backbone import (
    EMBED_DIM,
    FeatureSpec,
    FrozenBackbone,
    load_pretrained_backbone,
    semantic_input,
)
from colorize.models.base import ModelInfo, StreamColorizer
from colorize.models.layers import ABClassHead, resize_to
from colorize.models.overlap import FeaturesAhead
from colorize.models.registry import load_into, load_state, register_model, resolve_weights

if TYPE_CHECKING:  # training types only; nothing under colorize.training runs on the inference path
    from colorize.training.family import TrainBatch

AB_SCALE = 128.0
WINDOW = 5  # the paper's T
BACKBONE_STRIDES = (8, 16, 32)


def _conv(cin: int, cout: int, stride: int = 1, k: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2), nn.ReLU(inplace=True))


class FlowChromaNet(nn.Module):
    """The trainable part. Inputs: L (N, 1, H, W) and the backbone's features of the same frames."""

    def __init__(self, enc: int = 128, hidden: int = 256, glob: int = 256, classes: bool = False) -> None:
        super().__init__()
        self.enc1 = _conv(1, 24, 2)  # stride 2
        self.enc2 = _conv(24, 48, 2)  # stride 4
        self.enc3 = nn.Sequential(_conv(48, 96, 2), _conv(96, 96))  # stride 8
        self.enc_fuse = _conv(96 + 40 + 112, enc, k=1)
        # The stride-32 map (the backbone's most semantic spatial features), reduced on its own grid
        # and added before enc_fuse's ReLU. Zero at initialisation, so adding it to a trained net
        # keeps the function it had (fine-tuning starts from the shipped weights).
        self.enc_s32 = nn.Conv2d(320, enc, 1, bias=False)
        nn.init.zeros_(self.enc_s32.weight)
        self.global_fc = nn.Sequential(nn.Linear(EMBED_DIM, glob), nn.ReLU(inplace=True))
        self.lstm = nn.LSTM(enc, hidden, num_layers=2, batch_first=True)
        self.fusion = _conv(enc + glob + hidden, enc, k=1)
        self.dec1 = nn.Sequential(_conv(enc, 128), _conv(128, 96))
        self.dec2 = _conv(96 + 48, 64)
        self.dec3 = _conv(64 + 24, 32)
        self.out = nn.Conv2d(32, 2, 3, 1, 1)
        # Optional ab class head (Zhang et al.) on the stride-4 decoder (dec2) and the upsampled
        # stride-8 one (dec1): when present it gives the colours, and dec3/out are not run.
        self.cls = ABClassHead(64 + 96) if classes else None
        # A calibration of the shown colours, chosen after training on validation clips and carried
        # by the weights file (benchmarks/ab_bias.py): ab -> gain * (ab + offset). FlowChroma's
        # regression leans warm (its sepia: mean b +2.5 above the originals' on the held-out clips),
        # and a constant offset takes that out. Applied only where the stream shows colours
        # (:meth:`decode`); training never sees it. Identity (0, 1) in older files.
        self.register_buffer("ab_offset", torch.zeros(2))
        self.register_buffer("chroma_gain", torch.tensor(1.0))
        # The size at which the backbone reads L, relative to the net's own (see
        # colorize.models.backbone.semantic_input): the family's semantic_scale it was trained at,
        # or a calibration like the two above; 1 in older files.
        self.register_buffer("semantic_scale", torch.tensor(1.0))

    def encode(self, l: torch.Tensor, feats: dict) -> tuple[torch.Tensor, tuple]:
        x = l / 50.0 - 1.0
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        # Features of a larger L (semantic_scale) come on finer grids: area-averaged down to e3's
        # (as a feature cache stores them), bilinear up where coarser.
        f8 = resize_to(feats[8], e3.shape[-2:])
        f16 = resize_to(feats[16], e3.shape[-2:])
        f32 = F.interpolate(self.enc_s32(feats[32]), size=e3.shape[-2:], mode="bilinear", align_corners=False)
        enc = self.enc_fuse[1](self.enc_fuse[0](torch.cat((e3, f8, f16), 1)) + f32)
        return enc, (e1, e2)

    def decode(self, enc, skips, glob_vec, lstm_vec, l: torch.Tensor) -> torch.Tensor:
        """ab (N, 2, H, W) at the size of the frames' L (N, 1, H, W)."""
        ab, logits = self.decode_parts(enc, skips, glob_vec, lstm_vec, l.shape[-2:])
        ab = ab if logits is None else self.cls.shown(logits, l)
        return self.calibrated(ab)

    def calibrated(self, ab: torch.Tensor) -> torch.Tensor:
        """The file's colour calibration, gain x (ab + offset), on ab (..., 2, H, W): what the
        stream shows. The training form (:meth:`forward`) leaves it out; validation applies it."""
        return (ab + self.ab_offset.to(ab.dtype).view(2, 1, 1)) * self.chroma_gain.to(ab.dtype)

    def decode_parts(self, enc, skips, glob_vec, lstm_vec, out_size) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(regression ab at ``out_size``, None) or, with the class head, (None, its logits at stride 4)."""
        h, w = enc.shape[-2:]
        tile = torch.cat((glob_vec, lstm_vec), 1)[:, :, None, None].expand(-1, -1, h, w)
        x = self.fusion(torch.cat((enc, tile), 1))
        x8 = self.dec1(x)
        e1, e2 = skips
        x = F.interpolate(x8, size=e2.shape[-2:], mode="bilinear", align_corners=False)
        x = self.dec2(torch.cat((x, e2), 1))
        if self.cls is not None:
            up8 = F.interpolate(x8, size=x.shape[-2:], mode="bilinear", align_corners=False)
            return None, self.cls(torch.cat((x, up8), 1))
        x = F.interpolate(x, size=e1.shape[-2:], mode="bilinear", align_corners=False)
        x = self.dec3(torch.cat((x, e1), 1))
        ab = torch.tanh(self.out(x)) * AB_SCALE
        return F.interpolate(ab, size=out_size, mode="bilinear", align_corners=False), None

    def forward(self, l: torch.Tensor, feats: dict, logits: bool = False):
        """Training form. l: (B, T, 1, H, W); feats: backbone outputs for the B*T frames.

        Returns ab (B, T, 2, H, W); frame t sees frames 0..t of its window (causal LSTM).
        ``logits=True`` (class head only): also the class logits (B*T, Q, H/4, W/4).
        """
        b, t = l.shape[:2]
        flat = l.flatten(0, 1)
        enc, skips = self.encode(flat, feats)
        pooled = enc.mean(dim=(2, 3)).view(b, t, -1)
        seq, _ = self.lstm(pooled)
        glob_vec = self.global_fc(feats["embed"])
        ab, z = self.decode_parts(enc, skips, glob_vec, seq.flatten(0, 1), flat.shape[-2:])
        if z is not None:
            ab = self.cls.shown(z, flat)
        ab = ab.view(b, t, 2, *l.shape[-2:])
        return (ab, z) if logits else ab


# ---------------------------------------------------------------------------------- stream


class LSTMColorizer(StreamColorizer):
    """Sliding window over the stream: each frame coloured with its T-1 predecessors."""

    def __init__(self, info, net, backbone, device, dtype, window: int = WINDOW, sha256=None,
                 overlap: bool | None = None) -> None:
        self.info = info
        self.device = device
        self.dtype = dtype
        self.net = net.to(device=device, dtype=dtype).eval()
        self.backbone = backbone.to(device=device, dtype=dtype).eval()
        self.window = window
        self.weights_sha256 = sha256
        self._pooled: deque[torch.Tensor] = deque(maxlen=window)
        # overlap (colorize.models.overlap): the backbone of the newest frame runs in a worker
        # thread while the rest of the net colours the frame before; the same colours, one push later.
        self._ahead = FeaturesAhead(torch.device(device), overlap, name="lstm-backbone")
        self.overlap = self._ahead.enabled

    def reset(self) -> None:
        self._ahead.clear()
        self._pooled.clear()

    @torch.inference_mode()
    def flush(self) -> list:
        return [self._colour(index, x, feats) for (index, x), feats in self._ahead.drain()]

    @torch.inference_mode()
    def push(self, index: int, l: torch.Tensor) -> list:
        x = l.to(self.device, self.dtype)[None]
        return [self._colour(i, xi, feats) for (i, xi), feats in self._ahead.push((index, x), self._features, x)]

    def _features(self, x: torch.Tensor) -> dict:
        return self.backbone(semantic_input(x, float(self.net.semantic_scale), self.size_multiple),
                             strides=BACKBONE_STRIDES, embed=True)

    def _colour(self, index: int, x: torch.Tensor, feats: dict) -> tuple[int, torch.Tensor]:
        enc, skips = self.net.encode(x, feats)
        self._pooled.append(enc.mean(dim=(2, 3)))
        seq, _ = self.net.lstm(torch.stack(tuple(self._pooled), 1))
        glob_vec = self.net.global_fc(feats["embed"])
        ab = self.net.decode(enc, skips, glob_vec, seq[:, -1], x)
        return index, ab.float()


INFO = ModelInfo(
    name="lstm",
    summary="FlowChroma: CNN encoder + global semantics + 2-layer LSTM over a 5-frame window",
    paper="Wijesinghe et al., FlowChroma - A Deep Recurrent Neural Network for Video Colorization, ICIAR 2020",
    weights_file="lstm.pt",
    size_multiple=32,
    default_render_size=256,
)


def net_for(state: dict) -> FlowChromaNet:
    """An untrained :class:`FlowChromaNet` shaped like ``state``: the file decides the class head."""
    return FlowChromaNet(classes=any(k.startswith("cls.") for k in state))


def with_calibration(state: dict) -> dict:
    """``state`` with the identity calibration (offset 0, gain 1, semantic scale 1) where a file
    predates it."""
    if state and "ab_offset" not in state:
        state = {**state, "ab_offset": torch.zeros(2), "chroma_gain": torch.tensor(1.0)}
    if state and "semantic_scale" not in state:
        state = {**state, "semantic_scale": torch.tensor(1.0)}
    return state


@register_model(INFO)
def build_lstm(device: torch.device, dtype: torch.dtype, weights=None, window: int = WINDOW,
               overlap: bool | None = None, **_) -> LSTMColorizer:
    path, expected = resolve_weights(INFO.name, weights)
    state, digest = load_state(path, expected)
    state = with_calibration(state)
    net = net_for(state)
    load_into(net, state, path)
    backbone = FrozenBackbone(load_pretrained_backbone())
    return LSTMColorizer(INFO, net, backbone, device, dtype, window=window, sha256=digest, overlap=overlap)


# -------------------------------------------------------------------------------- training


class LSTMFamily:
    """What ``colorize train --model lstm`` trains: MSE on ab + ``temporal_weight`` x temporal L1.

    Both terms are on the unit scale (ab / 128). The temporal term compares frame t+1's prediction
    with frame t's prediction warped along the batch's backward flow, where the flow is valid.
    """

    name = "lstm"
    window = WINDOW
    temporal_weight = 0.1  # 0.5 halved the flicker but cost 0.1 colourfulness (dev_eval, 1,000 steps)
    # 1: the MSE compares the prediction as it will be shown, after colorize.color.gamut's limit
    # at the frame's L (no capacity spent on colours sRGB cannot show near black and white).
    gamut = 1
    # What a feature cache (colorize train --cache) stores: strides 8, 16, 32 on their own grids.
    feature_spec = FeatureSpec(grids=((8, 8), (16, 16), (32, 32)), embed=True)
    # 1: the net gets the ab class head, trained with ``class_weight`` x the cross-entropy to
    # Zhang's soft-encoded targets at stride 4 instead of the MSE (which is still logged); the
    # temporal term is on the colours it shows. An --init without the head may be used.
    classes = 0
    class_weight = 1.0
    # > 0 (with classes): Zhang et al.'s class rebalancing (lam) of the cross-entropy per pixel
    # (colorize.training.rebalance); the trainer sets ``ab_weights`` from the training data.
    rebalance = 0.0
    ab_weights = None
    growth_prefixes = ("cls.", "ab_offset", "chroma_gain", "semantic_scale")
    # The backbone reads each crop's L at this multiple of its size (semantic_input) in training,
    # validation and the feature cache; the net (so its weights file) carries it for inference.
    semantic_scale = 1.0

    def build_net(self) -> nn.Module:
        net = FlowChromaNet(classes=bool(self.classes))
        self.configure_net(net)
        return net

    def configure_net(self, net: nn.Module) -> None:
        """Settings the family writes into the net, also over an --init file's: the semantic scale."""
        if self.semantic_scale <= 0:
            raise ValueError(f"semantic_scale must be > 0, got {self.semantic_scale}")
        net.semantic_scale.fill_(self.semantic_scale)

    def training_step(self, net, batch: TrainBatch, backbone: FrozenBackbone, step: int) -> dict:
        lab = batch.lab
        b, t = lab.shape[:2]
        l = lab[:, :, :1]
        if batch.feats is not None:  # from a feature cache
            feats = batch.feats
        else:
            with torch.no_grad():
                feats = backbone(semantic_input(l.flatten(0, 1), float(net.semantic_scale)),
                                 strides=BACKBONE_STRIDES, embed=True)
        ab, z = net(l, feats, logits=True)  # z: the class logits, None without the class head
        ab = ab / AB_SCALE
        shown = ab
        if self.gamut:
            from colorize.color.gamut import limit_chroma

            shown = limit_chroma(l.flatten(0, 1), ab.flatten(0, 1) * AB_SCALE).view_as(ab) / AB_SCALE
        mse = F.mse_loss(shown, lab[:, :, 1:] / AB_SCALE)
        main = {"loss": mse, "mse": mse.detach()}
        if z is not None:
            from colorize.training.losses import class_cross_entropy

            ce = class_cross_entropy(z, lab[:, :, 1:].flatten(0, 1), net.cls.centres,
                                     self.ab_weights if self.rebalance > 0 else None)
            main = {"loss": self.class_weight * ce, "classes": ce.detach(), "mse": mse.detach()}
        if self.temporal_weight <= 0 or t < 2:
            return main
        from colorize.training.losses import temporal_loss

        temporal = sum(
            temporal_loss(ab[:, i + 1].float(), ab[:, i].float(), batch.flow[:, i], batch.valid[:, i]) for i in range(t - 1)
        ) / (t - 1)
        return {**main, "loss": main["loss"] + self.temporal_weight * temporal, "temporal": temporal.detach()}

    def predict(self, net, lab: torch.Tensor, backbone: FrozenBackbone) -> torch.Tensor:
        """Validation form: ab for (B, T, 3, H, W) Lab windows, with the file's calibration
        (gain, offset) as the stream shows it, so that a file is validated as it is used."""
        l = lab[:, :, :1]
        feats = backbone(semantic_input(l.flatten(0, 1), float(net.semantic_scale)), strides=BACKBONE_STRIDES, embed=True)
        return net.calibrated(net(l, feats))


FAMILY = LSTMFamily()
