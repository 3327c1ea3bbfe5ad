"""How colourful an image is: mean HSV saturation and the Hasler–Süsstrunk colourfulness.

Both are plain functions over the last three dimensions of an sRGB image:

    rgb: (*, 3, H, W) float in [0, 1] (torch tensor or numpy array), sRGB-encoded.

They return one value per image, shape ``(*)``, as the same array type as the input (torch in,
torch out; numpy in, numpy out), computed in float64 for float64 input and float32 otherwise.

* :func:`mean_saturation` is the mean of the HSV saturation ``S = (max - min) / max`` (0 where
  ``max = 0``), in [0, 1]. Lei & Chen (§5) keep the most saturated of their diverse outputs;
  the pipeline's ``--pick saturation`` uses this function.
* :func:`colourfulness` is the metric of Hasler & Süsstrunk, "Measuring colourfulness in natural
  images" (SPIE 2003): with ``rg = R - G`` and ``yb = (R + G) / 2 - B`` on the 0..255 scale,
  ``M = sqrt(std(rg)^2 + std(yb)^2) + 0.3 * sqrt(mean(rg)^2 + mean(yb)^2)`` (population std).
  It is 0 for any grey image; the paper's perceptual bands are roughly 15 "slightly", 33
  "moderately", 45 "averagely", 59 "quite", 82 "highly", 109 "extremely" colourful.
"""

from __future__ import annotations

from typing import Union

import numpy as np
import torch

Array = Union[torch.Tensor, np.ndarray]


def _to_tensor(rgb: Array, name: str) -> tuple[torch.Tensor, bool]:
    is_numpy = isinstance(rgb, np.ndarray)
    if not is_numpy and not isinstance(rgb, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor or numpy array, got {type(rgb).__name__}")
    x = torch.from_numpy(np.asarray(rgb)) if is_numpy else rgb
    if x.dim() < 3 or x.shape[-3] != 3:
        raise ValueError(f"{name}: expected shape (*, 3, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name}: expected float sRGB in [0, 1], got dtype {x.dtype}")
    return x.to(torch.float64 if x.dtype == torch.float64 else torch.float32), is_numpy


def _back(x: torch.Tensor, is_numpy: bool) -> Array:
    return x.numpy() if is_numpy else x


def saturation_map(rgb: Array) -> Array:
    """HSV saturation per pixel: (*, 3, H, W) in [0, 1] -> (*, 1, H, W) in [0, 1]."""
    x, is_numpy = _to_tensor(rgb, "saturation_map")
    x = x.clamp(0.0, 1.0)
    hi = x.amax(dim=-3, keepdim=True)
    lo = x.amin(dim=-3, keepdim=True)
    sat = torch.where(hi > 0, (hi - lo) / hi.clamp(min=1e-12), torch.zeros_like(hi))
    return _back(sat, is_numpy)


def mean_saturation(rgb: Array) -> Array:
    """Mean HSV saturation: (*, 3, H, W) sRGB in [0, 1] -> (*) in [0, 1]."""
    x, is_numpy = _to_tensor(rgb, "mean_saturation")
    sat = saturation_map(x)
    return _back(sat.mean(dim=(-3, -2, -1)), is_numpy)


def colourfulness(rgb: Array) -> Array:
    """Hasler–Süsstrunk colourfulness: (*, 3, H, W) sRGB in [0, 1] -> (*) >= 0 (0..255 scale)."""
    x, is_numpy = _to_tensor(rgb, "colourfulness")
    x = x.clamp(0.0, 1.0) * 255.0
    r, g, b = x.unbind(-3)
    rg = (r - g).flatten(-2)
    yb = (0.5 * (r + g) - b).flatten(-2)
    std = torch.sqrt(rg.var(dim=-1, unbiased=False) + yb.var(dim=-1, unbiased=False))
    mean = torch.sqrt(rg.mean(dim=-1) ** 2 + yb.mean(dim=-1) ** 2)
    return _back(std + 0.3 * mean, is_numpy)


colorfulness = colourfulness  # US spelling, as most of the literature writes it


def most_saturated(candidates_rgb: torch.Tensor) -> int:
    """Index of the most saturated of D candidates (D, 3, H, W): ``--pick saturation``."""
    if candidates_rgb.dim() != 4:
        raise ValueError(f"most_saturated: expected (D, 3, H, W), got {tuple(candidates_rgb.shape)}")
    return int(torch.argmax(mean_saturation(candidates_rgb)).item())


__all__ = ["saturation_map", "mean_saturation", "colourfulness", "colorfulness", "most_saturated"]
