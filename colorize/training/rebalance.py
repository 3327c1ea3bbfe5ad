"""Colour class rebalancing (Zhang, Isola & Efros, *Colorful Image Colorization*, ECCV 2016, §2.2).

Natural images are dominated by low-chroma ab values, so a loss averaged over pixels is won by
predicting desaturated colours: regression drifts to "sepia". Zhang et al. weight each pixel by the
rarity of its true colour: with p the empirical distribution of quantised ab (bins of 10 units,
smoothed by a Gaussian of sigma 5), the weight of bin q is

    w(q) ∝ ((1 - lam) * p(q) + lam / Q)^-1,   normalised so that E_p[w] = 1,

with Q the number of bins that occur and lam = 0.5. Here the same weights multiply the per-pixel
regression distance of the automatic families (their ``rebalance`` setting is lam; 0 switches
rebalancing off).
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

BIN = 10.0  # ab units per bin
EDGE = 120.0  # bins cover [-EDGE, EDGE) in a and b; values outside go to the edge bins
NBINS = int(2 * EDGE / BIN)


def _bin_index(ab: torch.Tensor) -> torch.Tensor:
    """ab (..., 2, H, W) -> flat bin index (..., H, W)."""
    q = ((ab.float() + EDGE) / BIN).floor().clamp(0, NBINS - 1).long()
    return q[..., 0, :, :] * NBINS + q[..., 1, :, :]


def ab_counts(ab: torch.Tensor) -> torch.Tensor:
    """Histogram (NBINS, NBINS) float64 of the chroma of ab (..., 2, H, W); sum it over batches."""
    return torch.bincount(_bin_index(ab).flatten(), minlength=NBINS * NBINS).double().view(NBINS, NBINS)


def rebalance_weights(counts: torch.Tensor, lam: float = 0.5, sigma: float = 5.0) -> torch.Tensor:
    """Per-bin weights (NBINS, NBINS) float32 from a histogram (:func:`ab_counts`), Zhang's eq. 4.

    Bins that never occur get weight 0 (nothing to weight); the weights' mean under the empirical
    distribution is 1, so a loss keeps its scale.
    """
    if not 0.0 < lam <= 1.0:
        raise ValueError(f"lam must be in (0, 1], got {lam}")
    total = counts.sum()
    if total <= 0:
        raise ValueError("rebalance_weights: empty histogram")
    p = (counts / total).float()
    radius = max(1, int(math.ceil(3 * sigma / BIN)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32) * BIN
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    smooth = F.conv2d(p[None, None], (g[:, None] * g[None, :])[None, None], padding=radius)[0, 0]
    occurs = counts > 0
    q = int(occurs.sum())
    w = torch.where(occurs, 1.0 / ((1 - lam) * smooth + lam / q), torch.zeros_like(smooth))
    return (w / (w * p).sum()).float()


def pixel_weights(ab: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Weight of every pixel (..., 1, H, W) of the true chroma ab (..., 2, H, W) (no gradient)."""
    return table.to(ab.device).flatten()[_bin_index(ab.detach())].unsqueeze(-3)
