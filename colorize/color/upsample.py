"""Edge-aware chroma upsampling guided by full-resolution lightness.

The model predicts ab at a working resolution. Bilinear upsampling alone smears colour across
every edge of the full-resolution picture. Here, in each small window at the working resolution,
ab is fitted as a linear function of L (the local linear model of He & Sun's fast guided filter,
2015): ab ~ A * L + b. The slope A is upsampled smoothly and applied to the detail that the
working resolution lost, ``L_full - up(L_low)``, on top of the bilinear ab:

    ab_full ~ up(ab_low) + up(A) * (L_full - up(L_low))

(computed as ``up(A) * L_full + up(ab_low - A * L_low)``: one resampling pass of 2C channels),
so colour edges snap to luminance edges where chroma follows lightness, and flat regions get the
bilinear result. The plain guided filter also box-blurs its intercept, which measurably loses
colour detail: on skimage's astronaut/chelsea/coffee/rocket downsampled 4x, mean |Δab| is
1.38/0.87/1.35/1.46 here, 1.63/0.96/1.77/1.73 for bilinear and 1.82/1.13/1.71/1.69 for the plain
fast guided filter.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _box(x: torch.Tensor, r: int) -> torch.Tensor:
    """Mean over a (2r+1)^2 window, windows clipped at the border (B, C, H, W).

    The same as ``F.avg_pool2d(x, 2r+1, 1, r, count_include_pad=False)`` (to float rounding), as
    sums of shifted views divided by each window's pixel count: on the CPU avg_pool2d without
    the padded pixels took 13 of the 40 ms of a 854x480 frame's :func:`upsample_ab` +
    gamut step, these sums take about 1.5 ms. Differentiable."""
    h, w = x.shape[-2:]
    p = F.pad(x, (r, r, r, r))
    rows = p[..., :, 0:w]
    for k in range(1, 2 * r + 1):
        rows = rows + p[..., :, k:k + w]
    total = rows[..., 0:h, :]
    for k in range(1, 2 * r + 1):
        total = total + rows[..., k:k + h, :]
    return total / (_window_count(h, r, x)[:, None] * _window_count(w, r, x)[None, :])


def _window_count(n: int, r: int, like: torch.Tensor) -> torch.Tensor:
    """How many of the 2r+1 positions around each index 0..n-1 lie inside [0, n)."""
    i = torch.arange(n, device=like.device)
    return ((i + r).clamp(max=n - 1) - (i - r).clamp(min=0) + 1).to(like.dtype)


def guided_upsample(
    src: torch.Tensor, guide_low: torch.Tensor, guide_full: torch.Tensor, radius: int, eps: float,
    guide_scale: float = 1.0,
) -> torch.Tensor:
    """``src`` (B, C, h, w) guided by one-channel ``guide_low`` (B, 1, h, w) -> (B, C, H, W) at the
    size of ``guide_full`` (B, 1, H, W), which is in units of ``guide_scale`` x ``guide_low``."""
    mean_i = _box(guide_low, radius)
    mean_p = _box(src, radius)
    cov_ip = _box(guide_low * src, radius) - mean_i * mean_p
    var_i = _box(guide_low * guide_low, radius) - mean_i * mean_i
    slope = _box(cov_ip / (var_i + eps), radius)
    # Per-pixel intercept (not box-averaged, unlike the plain guided filter): the low-resolution
    # chroma is reproduced exactly, only the detail below it follows L.
    offset = src - slope * guide_low
    size = tuple(guide_full.shape[-2:])
    up = F.interpolate(torch.cat((slope / guide_scale, offset), dim=1), size=size, mode="bilinear",
                       align_corners=False)
    c = src.shape[1]
    return torch.addcmul(up[:, c:], up[:, :c], guide_full)


def upsample_ab(
    ab: torch.Tensor,
    l_full: torch.Tensor,
    radius: int = 1,
    eps: float = 1e-3,
    l_low: torch.Tensor | None = None,
) -> torch.Tensor:
    """ab (B, 2, h, w) at working resolution + l_full (B, 1, H, W) in [0, 100] -> ab (B, 2, H, W).

    ``radius`` of the fitting windows, in working-resolution pixels (default 1: 3x3); ``eps``
    is the regularisation on L scaled to [0, 1] (smaller follows luminance detail more closely,
    larger keeps film grain out of the chroma).
    ``l_low`` (B, 1, h, w): the area-downsampled L if the caller has it (the model's input), else
    it is computed here. Computed in float32 (float64 stays float64); the result has ``ab``'s
    dtype and device.
    """
    if ab.dim() != 4 or ab.shape[1] != 2:
        raise ValueError(f"upsample_ab: ab must be (B, 2, h, w), got {tuple(ab.shape)}")
    if l_full.dim() != 4 or l_full.shape[1] != 1 or l_full.shape[0] != ab.shape[0]:
        raise ValueError(f"upsample_ab: l_full must be (B, 1, H, W) with B = {ab.shape[0]}, got {tuple(l_full.shape)}")
    h, w = ab.shape[-2:]
    if (h, w) == tuple(l_full.shape[-2:]):
        return ab
    out_dtype = ab.dtype
    work = torch.float64 if ab.dtype == torch.float64 else torch.float32
    guide_full = l_full.to(device=ab.device, dtype=work)
    if l_low is None:
        l_low = F.interpolate(guide_full, size=(h, w), mode="area")
    elif tuple(l_low.shape) != (ab.shape[0], 1, h, w):
        raise ValueError(f"upsample_ab: l_low must be {(ab.shape[0], 1, h, w)}, got {tuple(l_low.shape)}")
    guide_low = l_low.to(device=ab.device, dtype=work) / 100.0
    return guided_upsample(ab.to(work), guide_low, guide_full, radius, eps, guide_scale=100.0).to(out_dtype)


class ABUpsampler(nn.Module):
    """Module twin of :func:`upsample_ab`."""

    def __init__(self, radius: int = 1, eps: float = 1e-3) -> None:
        super().__init__()
        self.radius, self.eps = radius, eps

    def forward(self, ab: torch.Tensor, l_full: torch.Tensor) -> torch.Tensor:
        return upsample_ab(ab, l_full, self.radius, self.eps)
