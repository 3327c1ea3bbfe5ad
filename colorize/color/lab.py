"""sRGB <-> CIE Lab (D65), as plain functions with a thin ``nn.Module`` twin.

Conventions used across the project:
    rgb: (B, 3, H, W) float in [0, 1], sRGB-encoded.
    L:   (B, 1, H, W) in [0, 100].
    ab:  (B, 2, H, W) roughly in [-128, 127].
Constants follow the input's device and dtype, so the same code runs in float16 on CUDA
(computed internally in float32 for stability) and in float64 for gradchecks.
"""

from __future__ import annotations

import torch
from torch import nn

# sRGB -> XYZ (D65), IEC 61966-2-1.
_RGB2XYZ = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
_WHITE = (0.950456, 1.0, 1.088754)
_EPS = 0.008856
_KAPPA = 903.3


def _check(x: torch.Tensor, channels: int, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 3 or x.shape[-3] != channels:
        raise ValueError(f"{name}: expected shape (*, {channels}, H, W), got {tuple(x.shape)}")


def _work_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _matmul(m: tuple, x: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    mat = torch.tensor(m, dtype=torch.float64)
    if inverse:  # the exact inverse, so that rgb -> lab -> rgb round-trips to float precision
        mat = torch.linalg.inv(mat)
    return torch.einsum("ij,...jhw->...ihw", mat.to(device=x.device, dtype=x.dtype), x)


def srgb_to_linear(rgb: torch.Tensor) -> torch.Tensor:
    return torch.where(rgb > 0.04045, ((rgb.clamp(min=0.04045) + 0.055) / 1.055) ** 2.4, rgb / 12.92)


def linear_to_srgb(lin: torch.Tensor) -> torch.Tensor:
    return torch.where(
        lin > 0.0031308, 1.055 * lin.clamp(min=0.0031308) ** (1 / 2.4) - 0.055, 12.92 * lin
    )


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB (*, 3, H, W) in [0, 1] -> Lab (*, 3, H, W): L in [0, 100], ab about [-128, 127]."""
    _check(rgb, 3, "rgb_to_lab")
    out_dtype = rgb.dtype
    x = rgb.to(_work_dtype(rgb))
    xyz = _matmul(_RGB2XYZ, srgb_to_linear(x))
    white = torch.tensor(_WHITE, device=x.device, dtype=x.dtype).view(3, 1, 1)
    t = xyz / white
    f = torch.where(t > _EPS, t.clamp(min=_EPS) ** (1 / 3), (_KAPPA * t + 16.0) / 116.0)
    fx, fy, fz = f.unbind(-3)
    lab = torch.stack((116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)), dim=-3)
    return lab.to(out_dtype)


def lab_to_rgb(lab: torch.Tensor, clip: bool = True) -> torch.Tensor:
    """Lab (*, 3, H, W) -> sRGB (*, 3, H, W) in [0, 1] (clipped unless ``clip=False``)."""
    _check(lab, 3, "lab_to_rgb")
    out_dtype = lab.dtype
    x = lab.to(_work_dtype(lab))
    l, a, b = x.unbind(-3)
    fy = (l + 16.0) / 116.0
    fx = fy + a / 500.0
    fz = fy - b / 200.0
    f = torch.stack((fx, fy, fz), dim=-3)
    t = torch.where(f > 6.0 / 29.0, f**3, (116.0 * f - 16.0) / _KAPPA)
    white = torch.tensor(_WHITE, device=x.device, dtype=x.dtype).view(3, 1, 1)
    lin = _matmul(_RGB2XYZ, t * white, inverse=True)
    rgb = linear_to_srgb(lin.clamp(min=0.0) if clip else lin)
    if clip:
        rgb = rgb.clamp(0.0, 1.0)
    return rgb.to(out_dtype)


def rgb_to_l(rgb: torch.Tensor) -> torch.Tensor:
    """Lightness only: sRGB (*, 3, H, W) -> L (*, 1, H, W) in [0, 100]."""
    _check(rgb, 3, "rgb_to_l")
    out_dtype = rgb.dtype
    x = rgb.to(_work_dtype(rgb))
    y = _matmul(_RGB2XYZ[1:2], srgb_to_linear(x))
    l = torch.where(y > _EPS, 116.0 * y.clamp(min=_EPS) ** (1 / 3) - 16.0, _KAPPA * y)
    return l.to(out_dtype)


def l_to_grey_rgb(l: torch.Tensor) -> torch.Tensor:
    """L (*, 1, H, W) -> the neutral sRGB grey (*, 3, H, W) with that lightness."""
    zeros = torch.zeros_like(l)
    return lab_to_rgb(torch.cat((l, zeros, zeros), dim=-3))


class LabConverter(nn.Module):
    """Module twin of :func:`rgb_to_lab` / :func:`lab_to_rgb`."""

    def __init__(self, inverse: bool = False) -> None:
        super().__init__()
        self.inverse = inverse

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return lab_to_rgb(x) if self.inverse else rgb_to_lab(x)
