"""Edge-aware chroma upsampling: a fast guided filter (He & Sun, 2015) steered by full-res lightness.

The model predicts ab at a working resolution. Bilinear upsampling would smear colour across
every edge of the full-resolution picture; the guided filter instead fits, in each small window
at the working resolution, ab = a * L + b, and applies the (smoothly upsampled) a, b to the
full-resolution L, so chroma edges snap to luminance edges.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _box(x: torch.Tensor, r: int) -> torch.Tensor:
    """Mean over a (2r+1)^2 window, windows clipped at the border (B, C, H, W)."""
    return F.avg_pool2d(x, 2 * r + 1, stride=1, padding=r, count_include_pad=False)


def _default_radius(h: int, w: int) -> int:
    return max(1, round(min(h, w) / 128))


def guided_upsample(
    src: torch.Tensor, guide_low: torch.Tensor, guide_full: torch.Tensor, radius: int, eps: float,
    guide_scale: float = 1.0,
) -> torch.Tensor:
    """Fast guided filter: ``src`` (B, C, h, w) guided by one-channel ``guide_low`` (B, 1, h, w),
    applied at ``guide_full`` (B, 1, H, W) -> (B, C, H, W). ``guide_full`` is in units of
    ``guide_scale`` x ``guide_low`` (the scale is folded into the low-resolution coefficients, which
    saves a full-resolution pass)."""
    mean_i = _box(guide_low, radius)
    mean_p = _box(src, radius)
    cov_ip = _box(guide_low * src, radius) - mean_i * mean_p
    var_i = _box(guide_low * guide_low, radius) - mean_i * mean_i
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    coeffs = torch.cat((_box(a, radius) / guide_scale, _box(b, radius)), dim=1)
    size = tuple(guide_full.shape[-2:])
    coeffs = F.interpolate(coeffs, size=size, mode="bilinear", align_corners=False)
    a_full, b_full = coeffs.chunk(2, dim=1)
    return torch.addcmul(b_full, a_full, guide_full)


def upsample_ab(
    ab: torch.Tensor,
    l_full: torch.Tensor,
    radius: int | None = None,
    eps: float = 1e-3,
    l_low: torch.Tensor | None = None,
) -> torch.Tensor:
    """ab (B, 2, h, w) at working resolution + l_full (B, 1, H, W) in [0, 100] -> ab (B, 2, H, W).

    ``radius`` is in working-resolution pixels (default: short side / 128, at least 1); ``eps``
    is the regularisation on L scaled to [0, 1] (smaller follows luminance edges more closely).
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
    r = _default_radius(h, w) if radius is None else radius
    return guided_upsample(ab.to(work), guide_low, guide_full, r, eps, guide_scale=100.0).to(out_dtype)


class ABUpsampler(nn.Module):
    """Module twin of :func:`upsample_ab`."""

    def __init__(self, radius: int | None = None, eps: float = 1e-3) -> None:
        super().__init__()
        self.radius, self.eps = radius, eps

    def forward(self, ab: torch.Tensor, l_full: torch.Tensor) -> torch.Tensor:
        return upsample_ab(ab, l_full, self.radius, self.eps)
