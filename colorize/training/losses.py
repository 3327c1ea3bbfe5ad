"""Losses for self-supervised colourization (Lei & Chen 2019 and friends), as plain functions.

Every function returns a scalar tensor (mean over the batch) unless stated otherwise, works in the
input's device and dtype and is differentiable in the prediction. Colours are expected on a unit
scale (the families pass ab / 128) so that the terms have comparable magnitudes.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch.nn import functional as F

from colorize.flow import warp


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None, eps: float = 1e-6) -> torch.Tensor:
    """Mean |pred - target| over the pixels where ``mask`` (B, 1, H, W) is 1 (all pixels if None)."""
    diff = (pred - target).abs()
    if mask is None:
        return diff.mean()
    mask = mask.expand_as(diff)
    return (diff * mask).sum() / (mask.sum() + eps)


def temporal_loss(
    curr: torch.Tensor, prev: torch.Tensor, flow: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Lei & Chen eq. (3): L1 between frame t+1's colours and frame t's colours warped along ``flow``.

    curr, prev: (B, C, H, W) predictions for frames t+1 and t; flow (B, 2, H, W) maps frame t+1's
    pixels into frame t (see :mod:`colorize.flow`); mask (B, 1, H, W): 1 = not occluded.
    """
    return masked_l1(curr, warp(prev, flow), mask)


def _pixel_coords(h: int, w: int, device, dtype) -> torch.Tensor:
    ys, xs = torch.meshgrid(
        torch.arange(h, device=device, dtype=dtype), torch.arange(w, device=device, dtype=dtype), indexing="ij"
    )
    return torch.stack((xs, ys)).reshape(2, -1) / max(h, w)


def knn_pairs(
    guide: torch.Tensor, k: int = 5, num_samples: int = 1024, lam: float = 1.0, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """K nearest neighbours in the bilateral space (guide channels, lam * x, lam * y).

    guide: (B, G, H, W), e.g. the ground-truth RGB in [0, 1]; coordinates are divided by max(H, W).
    A random subset of ``num_samples`` pixels per image is searched (exact KNN among them), which
    keeps the cost O(num_samples^2) whatever the frame size. Returns flat pixel indices
    ``(idx (B, S), nbr (B, S, k))`` into H * W.
    """
    b, g, h, w = guide.shape
    n = h * w
    s = min(num_samples, n)
    if k >= s:
        raise ValueError(f"k={k} needs more than {s} sampled pixels")
    with torch.no_grad():
        if s == n:
            idx = torch.arange(n, device=guide.device).expand(b, n)
        else:
            idx = torch.stack([torch.randperm(n, generator=generator)[:s] for _ in range(b)]).to(guide.device)
        coords = _pixel_coords(h, w, guide.device, guide.dtype) * lam
        feats = torch.cat((guide.reshape(b, g, n), coords.expand(b, -1, -1)), 1)  # (B, G+2, N)
        pts = torch.gather(feats, 2, idx[:, None].expand(-1, g + 2, -1)).transpose(1, 2)  # (B, S, G+2)
        dist = torch.cdist(pts, pts)
        dist.diagonal(dim1=1, dim2=2).fill_(float("inf"))  # a pixel is not its own neighbour
        nbr_pos = dist.topk(k, dim=2, largest=False).indices  # positions within the sample
        nbr = torch.gather(idx[:, None, :].expand(-1, s, -1), 2, nbr_pos)
    return idx, nbr


def bilateral_loss(
    pred: torch.Tensor,
    guide: torch.Tensor,
    k: int = 5,
    num_samples: int = 1024,
    lam: float = 1.0,
    generator: torch.Generator | None = None,
    pairs: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Lei & Chen eq. (2): L1 between the predicted colours of bilateral nearest neighbours.

    pred: (B, C, H, W) predicted colours (any number of channels: several diverse outputs may be
    stacked); guide: (B, G, H, W) the ground truth the KNN graph is built on (RGB in [0, 1]).
    ``pairs``: the neighbours already found for this guide (``knn_pairs``'s output, e.g. from a
    feature cache, which searches them once per sample rather than once per step); they must
    have ``k`` neighbours each. Returns the mean over sampled pixels, neighbours and channels.
    Zero for a constant prediction.
    """
    if pred.shape[0] != guide.shape[0] or pred.shape[-2:] != guide.shape[-2:]:
        raise ValueError(f"pred {tuple(pred.shape)} and guide {tuple(guide.shape)} do not match")
    b, c = pred.shape[:2]
    if pairs is None:
        idx, nbr = knn_pairs(guide, k, num_samples, lam, generator)
    else:
        idx, nbr = pairs
        if idx.shape[0] != b or nbr.shape[:2] != idx.shape or nbr.shape[2] != k:
            raise ValueError(f"pairs {tuple(idx.shape)}, {tuple(nbr.shape)} do not fit {b} images and k={k}")
    flat = pred.reshape(b, c, -1)
    centre = torch.gather(flat, 2, idx[:, None].expand(-1, c, -1))  # (B, C, S)
    s = idx.shape[1]
    others = torch.gather(flat, 2, nbr.reshape(b, 1, s * k).expand(-1, c, -1)).view(b, c, s, k)
    return (centre[..., None] - others).abs().mean()


def perceptual_distance(
    feature_fn: Callable[[torch.Tensor], Sequence[torch.Tensor]], x: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """Per-sample perceptual distance (N,): sum over feature levels of the mean L1 of ``feature_fn``.

    ``feature_fn`` maps images (N, 3, H, W) to a list of feature maps (a frozen backbone); the
    target's features are computed without gradient.
    """
    fx = feature_fn(x)
    with torch.no_grad():
        fy = feature_fn(y)
    return sum((a - b).abs().flatten(1).mean(1) for a, b in zip(fx, fy))


def ranked_diversity_loss(dists: torch.Tensor, betas: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """Ranked diversity loss (Li, Chen & Koltun 2018; Lei & Chen eq. 7).

    dists: (N, d) distance of each of the d outputs to the ground truth; betas: d decreasing
    weights. ``mean_n [min_i dists[n, i] + sum_i betas[i] * dists[n, i]]``: the min lets each output
    specialise on the samples it explains best, the ranked sum keeps every output trained and
    makes output 0 the safest single answer.
    """
    if dists.dim() != 2:
        raise ValueError(f"dists must be (N, d), got {tuple(dists.shape)}")
    betas = torch.as_tensor(betas, device=dists.device, dtype=dists.dtype)
    if betas.shape != dists.shape[1:]:
        raise ValueError(f"need {dists.shape[1]} betas, got {tuple(betas.shape)}")
    return (dists.min(1).values + (dists * betas).sum(1)).mean()


def huber(pred: torch.Tensor, target: torch.Tensor, delta: float = 0.05, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample Huber (smooth L1) distance (N,) averaged over all but the first dimension;
    ``weight`` (broadcast to the per-element distances, e.g. (N, 1, H, W)) scales each element first."""
    per_element = F.huber_loss(pred, target, delta=delta, reduction="none")
    if weight is not None:
        per_element = per_element * weight
    return per_element.flatten(1).mean(1) / delta


def class_cross_entropy(logits: torch.Tensor, ab_gt: torch.Tensor, centres: torch.Tensor,
                        ab_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Zhang et al.'s loss for an ab class head: the cross-entropy of ``logits`` (N, Q, h, w) to the
    soft-encoded truth ``ab_gt`` (N, 2, H, W, ab units; area-averaged onto the logits' grid),
    each pixel weighted by the rebalancing table ``ab_weights`` (colorize.training.rebalance) if
    given. Returns the mean over pixels."""
    from colorize.color.bins import soft_encode
    from colorize.training.rebalance import pixel_weights

    ab_low = F.interpolate(ab_gt.float(), size=logits.shape[-2:], mode="area")
    ce = -(soft_encode(ab_low, centres) * F.log_softmax(logits.float(), 1)).sum(1, keepdim=True)
    if ab_weights is not None:
        ce = ce * pixel_weights(ab_low, ab_weights)
    return ce.mean()
