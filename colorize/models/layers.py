"""Small building blocks shared by the model families (conv-norm-act, U-Net up blocks, hypercolumns,
the ab class head).

All blocks take and return (B, C, H, W) tensors; none of them read files or hold state beyond
their parameters and buffers.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn
from torch.nn import functional as F


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "bn":
        return nn.BatchNorm2d(channels)
    if kind == "gn":
        return nn.GroupNorm(min(8, channels), channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; choose bn, gn or none")


class ConvNormAct(nn.Sequential):
    """Conv2d (same padding) -> norm -> ReLU. ``norm``: ``"bn"``, ``"gn"`` or ``"none"``."""

    def __init__(
        self, cin: int, cout: int, k: int = 3, stride: int = 1, dilation: int = 1, norm: str = "bn", act: bool = True
    ) -> None:
        pad = dilation * (k - 1) // 2
        layers = [nn.Conv2d(cin, cout, k, stride, pad, dilation=dilation, bias=norm == "none"), _norm(norm, cout)]
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


def resize_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize (B, C, h, w) to ``size``: bilinear when enlarging, area averaging when shrinking."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if x.shape[-2] >= size[0] and x.shape[-1] >= size[1]:
        return F.interpolate(x, size=size, mode="area")
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class UpBlock(nn.Module):
    """U-Net decoder step: upsample to the skip's size, concatenate the skip, ConvNormAct."""

    def __init__(self, cin: int, cskip: int, cout: int, norm: str = "bn") -> None:
        super().__init__()
        self.conv = ConvNormAct(cin + cskip, cout, norm=norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv(torch.cat((x, skip), 1))


class Hypercolumn(nn.Module):
    """Hypercolumn features (Hariharan et al. 2015) reduced by a 1x1 conv, computed cheaply.

    The papers upsample every backbone map to the target size, concatenate them and apply a 1x1
    conv. Resampling (bilinear or area) and a 1x1 conv are both linear and commute (resampling
    weights sum to one, so the bias commutes too), so each map is reduced on the smaller of its own
    grid and the target grid and the resampled results are summed: the same function at a fraction
    of the cost. The global embedding, if
    given, is a constant map whose 1x1 conv is a linear layer broadcast over the grid.

    in_channels: {stride: channels} of the feature maps used; embed_dim: size of ``feats["embed"]``.
    forward(feats, size) -> (B, out_channels, *size).
    """

    def __init__(self, in_channels: Mapping[int, int], out_channels: int, embed_dim: int | None = None) -> None:
        super().__init__()
        self.strides = tuple(sorted(in_channels))
        self.reduce = nn.ModuleDict({str(s): nn.Conv2d(in_channels[s], out_channels, 1, bias=False) for s in self.strides})
        self.embed = nn.Linear(embed_dim, out_channels, bias=False) if embed_dim else None
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, feats: Mapping, size: tuple[int, int]) -> torch.Tensor:
        out = None
        for s in self.strides:
            x = feats[s]
            if x.shape[-2] * x.shape[-1] > size[0] * size[1]:  # convolve the smaller of the two grids
                y = self.reduce[str(s)](resize_to(x, size))
            else:
                y = resize_to(self.reduce[str(s)](x), size)
            out = y if out is None else out + y
        if self.embed is not None:
            out = out + self.embed(feats["embed"])[:, :, None, None]
        return out + self.bias[None, :, None, None]


class ABClassHead(nn.Module):
    """Zhang et al.'s classification over quantised ab, on f's stride-4 decoder features.

    Regression to ab pulls every uncertain colour to the brown mean; a distribution over the ab
    classes (:mod:`colorize.color.bins`) keeps the modes, and the annealed mean at temperature T
    (a buffer, so the weights file carries the T chosen on validation) picks how far towards the
    mode to go. Two 1x1 layers on a net's stride-4 decoder features (~0.28 GMAC at 256x448 for
    96 input channels). :meth:`shown` brings the decoded ab to the net's input resolution by the
    L-guided upsampling of :func:`colorize.color.upsample.guided_upsample`, so colour edges follow L.
    """

    def __init__(self, in_channels: int, hidden: int = 96, temperature: float = 0.38) -> None:
        super().__init__()
        from colorize.color.bins import ab_class_centres

        centres = ab_class_centres()
        self.register_buffer("centres", centres.clone())
        self.register_buffer("temperature", torch.tensor(float(temperature)))
        self.hidden = ConvNormAct(in_channels, hidden, k=1)
        self.logits = nn.Conv2d(hidden, centres.shape[0], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(self.hidden(x))

    def decode(self, logits: torch.Tensor, temperature: float | None = None) -> torch.Tensor:
        from colorize.color.bins import annealed_mean

        return annealed_mean(logits, self.centres, self.temperature if temperature is None else temperature)

    def shown(self, logits: torch.Tensor, l: torch.Tensor, temperature: float | None = None) -> torch.Tensor:
        """ab (N, 2, H, W) at the resolution of L (N, 1, H, W): annealed mean, L-guided upsampling."""
        from colorize.color.upsample import guided_upsample

        ab4 = self.decode(logits, temperature)
        l4 = F.interpolate(l.float(), size=ab4.shape[-2:], mode="area")
        return guided_upsample(ab4, l4 / 100.0, l.float() / 100.0, radius=1, eps=1e-3).to(l.dtype)


class ModeSelector(nn.Module):
    """Which of a net's d regression outputs to show, pixel by pixel.

    Lei & Chen's ranked diversity loss leaves d outputs: output 0 near the conditional mean (grey
    where unsure) and the others as specialised modes, one of which is often far closer to the
    truth than output 0. Picking by saturation does not find it; this head learns to: from the
    net's stride-4 decoder features it predicts, per pixel, logits over the d outputs, trained by
    cross-entropy towards the output that was closest to the truth there. The shown ab is the
    softmax mixture of the outputs at temperature T (a buffer, chosen on validation clips and
    carried by the weights file): T = 1 is the selector's expected colour, T -> 0 takes its single
    most likely output. Plain convs (no BatchNorm), so it can be trained alone on a frozen net.
    """

    def __init__(self, in_channels: int, num_outputs: int, hidden: int = 32, temperature: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("temperature", torch.tensor(float(temperature)))
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 1), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, num_outputs, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, d, h, w) on the features' own grid."""
        return self.body(x)

    def mix(self, logits: torch.Tensor, outputs: torch.Tensor, temperature: float | None = None) -> torch.Tensor:
        """The shown ab (N, 2, H, W): outputs (N, d, 2, H, W) weighted by softmax(logits / T),
        the logits brought bilinearly to the outputs' resolution first."""
        t = self.temperature if temperature is None else temperature
        logits = F.interpolate(logits.float(), size=outputs.shape[-2:], mode="bilinear", align_corners=False)
        w = torch.softmax(logits / t, 1).to(outputs.dtype)
        return (w.unsqueeze(2) * outputs).sum(1)
