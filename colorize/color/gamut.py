"""Gamut-aware chroma: scale predicted ab back into what sRGB can show at each pixel's own L.

A network that predicts ab at a working resolution knows nothing of the full-resolution L it
will be merged with. Where that L is near black or near white, sRGB has little or no room for
chroma, and a plain Lab -> RGB conversion clips each channel separately: the hue shifts and dark
areas turn navy (a very dark blue still has a visible blue code value, because blue adds little
to luminance). This module limits chroma per pixel, before the merge:

    C_max(L, h) = largest chroma of hue h at lightness L that stays inside sRGB [0, 1]^3,
                  times a smoothstep ramp that closes it to 0 in the deep shadows (``DARK_RAMP``);
    C' = C_max * knee(C / C_max),  ab' = ab * C' / C      (hue kept)

``knee`` is the identity up to ``KNEE`` of the room and then rolls off smoothly (tanh) towards
the limit: colours well inside the gamut are untouched, the map is monotone in C, never raises
chroma, and C_max = 0 (pure black, pure white) gives exactly neutral ab = 0.

The gamut boundary is tabulated once (bisection on the exact Lab -> linear sRGB transform) on an
(L, hue) grid and interpolated bilinearly. Because the table is linear in L between grid rows and
the boundary is a cone (linear in L) below L = 8, interpolation is accurate there too.

Functions take L (B, 1, H, W) in [0, 100] and ab (B, 2, H, W); they work in any float dtype and
on any device (computed in float32, float64 stays float64), and are differentiable in ab (the
limit itself is treated as a constant of the pixel's L and hue), so training losses can use the
same mapping as inference (:func:`limit_chroma`).
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import nn
from torch.nn import functional as F

from colorize.color.lab import lab_to_rgb
from colorize.color.upsample import upsample_ab

L_STEPS = 100  # table rows: L = 0, 1, ..., 100
HUE_STEPS = 180  # table columns: every 2 degrees (plus a wrap-around column)
KNEE = 0.8  # share of the room left untouched
# Deep shadows: the allowed chroma also ramps down (smoothstep) from full at L = 12 to none at
# L = 7. sRGB alone leaves a very dark blue room for visible blue code values (L = 0.3, the level
# of a pillarbox bar, can still show RGB 0/0/13), and archivists expect blacks to stay neutral.
# Chosen on ground truth put through the limit, on the training clips (every 50th frame of the 82
# clips): the ramp with the highest PSNR whose dark cast (mean |ab| where L < 10) stays well under
# 1.5 for a model that reproduced the truth exactly: 50.7 dB and 0.92 here, against 51.7 dB and
# 1.36 for a ramp from 12 to 6 and 53.5 dB and 2.10 for one from 20 to 0.
DARK_RAMP = (7.0, 12.0)


def _in_gamut(l: torch.Tensor, a: torch.Tensor, b: torch.Tensor, tol: float = 1e-7) -> torch.Tensor:
    """True where Lab (float64 tensors of one 2-D shape) maps to sRGB inside [0, 1] (unclipped
    conversion: the sRGB curve keeps 0 and 1, so this is the linear-light cube)."""
    rgb = lab_to_rgb(torch.stack((l, a, b)), clip=False)
    return ((rgb >= -tol) & (rgb <= 1.0 + tol)).all(0)


@lru_cache(maxsize=1)
def max_chroma_table() -> torch.Tensor:
    """(L_STEPS + 1, HUE_STEPS + 1) float64: the sRGB chroma limit at L = i * 100 / L_STEPS and
    hue = j * 360 / HUE_STEPS degrees (the last column repeats the first, for wrap-around).
    Rows L = 0 and L = 100 are exactly 0: black and white have no room for colour."""
    l = torch.linspace(0.0, 100.0, L_STEPS + 1, dtype=torch.float64)[:, None].expand(-1, HUE_STEPS)
    hue = torch.arange(HUE_STEPS, dtype=torch.float64) * (2 * math.pi / HUE_STEPS)
    ca, sa = torch.cos(hue).expand_as(l), torch.sin(hue).expand_as(l)
    lo = torch.zeros_like(l)
    hi = torch.full_like(l, 200.0)
    for _ in range(28):  # bisection to ~1e-6 of chroma
        mid = (lo + hi) / 2
        ok = _in_gamut(l, mid * ca, mid * sa)
        lo = torch.where(ok, mid, lo)
        hi = torch.where(ok, hi, mid)
    lo[0] = 0.0
    lo[-1] = 0.0
    return torch.cat((lo, lo[:, :1]), 1)


@lru_cache(maxsize=1)
def _signed_hue_table() -> torch.Tensor:
    """:func:`max_chroma_table` with its columns from hue -180 to +180 degrees (the range of
    atan2), so a lookup needs no wrap-around step; the same values."""
    table = max_chroma_table()
    half = HUE_STEPS // 2
    return torch.cat((table[:, half:HUE_STEPS], table[:, :half + 1]), 1)


def max_chroma(l: torch.Tensor, ab: torch.Tensor, dark: tuple[float, float] | None = DARK_RAMP) -> torch.Tensor:
    """Allowed chroma (B, 1, H, W) for L (B, 1, H, W) at the hue of ab (B, 2, H, W): the sRGB
    limit, ramped down (smoothstep) to 0 from L = dark[1] to L = dark[0] (None: no ramp).
    No gradient."""
    _check(l, ab)
    work = torch.float64 if ab.dtype == torch.float64 else torch.float32
    with torch.no_grad():
        lw, abw = l.to(work), ab.to(work)
        table = _signed_hue_table().to(device=ab.device, dtype=work)[None, None]  # (1, 1, Lr, Hc)
        # grid_sample: x indexes columns (hue, atan2 / pi in [-1, 1]; atan2(0, 0) = 0, and any
        # hue is fine there), y rows (L / 50 - 1), with align_corners=True so that -1 and 1 are
        # the first and last table entries; "border" padding clamps L outside [0, 100].
        gx = torch.atan2(abw[:, 1], abw[:, 0]).div_(math.pi)
        gy = lw[:, 0] / 50.0 - 1.0
        grid = torch.stack((gx, gy), -1)  # (B, H, W, 2)
        cmax = F.grid_sample(table.expand(l.shape[0], -1, -1, -1), grid, mode="bilinear",
                             padding_mode="border", align_corners=True)
        if dark is not None:
            t = lw.sub(dark[0]).mul_(1.0 / (dark[1] - dark[0])).clamp_(0.0, 1.0)
            cmax.mul_(t.mul(-2.0).add_(3.0).mul_(t).mul_(t))  # smoothstep t^2 (3 - 2t)
        return cmax.clamp_(min=0.0).to(ab.dtype)


def _knee(x: torch.Tensor, knee: float) -> torch.Tensor:
    """Identity up to ``knee``, then a smooth (C1) tanh roll-off that tends to 1; monotone, <= x."""
    span = 1.0 - knee
    return torch.where(x <= knee, x, knee + span * torch.tanh((x - knee) / span))


def limit_chroma(l: torch.Tensor, ab: torch.Tensor, knee: float = KNEE,
                 dark: tuple[float, float] | None = DARK_RAMP) -> torch.Tensor:
    """ab (B, 2, H, W) scaled back, per pixel and keeping its hue, into the chroma sRGB can show
    at L (B, 1, H, W) in [0, 100]. Exactly 0 where there is no room (L = 0 or 100); unchanged
    below ``knee`` of the room; never more chroma than the input. Differentiable in ab."""
    if not 0.0 < knee < 1.0:
        raise ValueError(f"knee must be in (0, 1), got {knee}")
    if dark is not None and not 0.0 <= dark[0] < dark[1] <= 100.0:
        raise ValueError(f"dark ramp must be 0 <= start < end <= 100, got {dark}")
    cmax = max_chroma(l, ab, dark)
    tiny = torch.finfo(ab.dtype if ab.dtype.is_floating_point else torch.float32).tiny ** 0.5
    c = torch.sqrt((ab * ab).sum(1, keepdim=True) + tiny * tiny)
    c_new = cmax * _knee(c / cmax.clamp(min=tiny), knee)
    return ab * (c_new / c)


class ChromaLimiter(nn.Module):
    """Module twin of :func:`limit_chroma`: ``forward(l, ab) -> ab``."""

    def __init__(self, knee: float = KNEE, dark: tuple[float, float] | None = DARK_RAMP) -> None:
        super().__init__()
        self.knee, self.dark = knee, dark

    def forward(self, l: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        return limit_chroma(l, ab, self.knee, self.dark)


def _check(l: torch.Tensor, ab: torch.Tensor) -> None:
    if l.dim() != 4 or l.shape[1] != 1:
        raise ValueError(f"L must be (B, 1, H, W), got {tuple(l.shape)}")
    if ab.dim() != 4 or ab.shape[1] != 2:
        raise ValueError(f"ab must be (B, 2, H, W), got {tuple(ab.shape)}")
    if l.shape[0] != ab.shape[0] or l.shape[-2:] != ab.shape[-2:]:
        raise ValueError(f"L {tuple(l.shape)} and ab {tuple(ab.shape)} do not match")


def finish_ab(ab: torch.Tensor, l_full: torch.Tensor, l_low: torch.Tensor | None = None) -> torch.Tensor:
    """The one way predicted chroma reaches a picture: ab (B, 2, h, w) at the working size is
    upsampled guided by the full-resolution L (B, 1, H, W) and then limited to what sRGB can show
    at that L (:func:`limit_chroma`). Every model family, every diverse candidate and the refine
    pass's output go through here in the pipeline, and ``colorize eval`` measures the same."""
    ab_full = upsample_ab(ab, l_full, l_low=l_low)
    return limit_chroma(l_full.to(device=ab_full.device, dtype=ab_full.dtype), ab_full)
