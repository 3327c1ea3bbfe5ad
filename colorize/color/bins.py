"""Quantised chroma: the ab classes of Zhang, Isola & Efros (*Colorful Image Colorization*, 2016).

The ab plane is cut into squares of ``BIN`` units; the classes are the squares whose centre sRGB
can show at some lightness: 221 with the sRGB gamut table of :mod:`colorize.color.gamut` (Zhang et
al. count 313 with a looser gamut estimate). A colourization net predicts a
distribution over them per pixel; :func:`annealed_mean` turns it back into one ab value.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

from colorize.color.gamut import HUE_STEPS, max_chroma_table

BIN = 10.0
EDGE = 110.0  # centres at -110, -100, ..., 110
SIGMA = 5.0  # soft-encoding Gaussian, ab units (Zhang et al.)


@lru_cache(maxsize=1)
def ab_class_centres() -> torch.Tensor:
    """(Q, 2) float32 centres of the in-gamut ab squares, a-major order."""
    steps = torch.arange(-EDGE, EDGE + BIN / 2, BIN, dtype=torch.float64)
    a, b = torch.meshgrid(steps, steps, indexing="ij")
    a, b = a.flatten(), b.flatten()
    hue = torch.atan2(b, a) % (2 * math.pi)
    col = (hue / (2 * math.pi) * HUE_STEPS).round().long()
    reach = max_chroma_table().max(0).values  # the largest chroma at each hue, over all L
    keep = torch.hypot(a, b) <= reach[col]
    return torch.stack((a[keep], b[keep]), 1).float()


def soft_encode(ab: torch.Tensor, centres: torch.Tensor, sigma: float = SIGMA, k: int = 5) -> torch.Tensor:
    """Target distribution (B, Q, H, W) of ab (B, 2, H, W): a Gaussian of ``sigma`` over the ``k``
    nearest class centres (Zhang et al.'s soft encoding), summing to 1 per pixel."""
    flat = ab.permute(0, 2, 3, 1).reshape(-1, 2).float()
    d2 = torch.cdist(flat, centres.to(flat)).square()  # (P, Q)
    near, idx = d2.topk(k, dim=1, largest=False)
    w = torch.softmax(-near / (2 * sigma * sigma), dim=1)
    out = torch.zeros_like(d2).scatter_(1, idx, w)
    b, _, h, wd = ab.shape
    return out.view(b, h, wd, -1).permute(0, 3, 1, 2)


def annealed_mean(logits: torch.Tensor, centres: torch.Tensor, temperature: float | torch.Tensor) -> torch.Tensor:
    """ab (B, 2, H, W) from class logits (B, Q, H, W): the mean of the distribution sharpened to
    temperature T (Zhang et al.'s eq. 5; T = 1 is the mean, T -> 0 the mode)."""
    p = torch.softmax(logits.float() / temperature, dim=1)
    return torch.einsum("bqhw,qc->bchw", p, centres.to(p))
