"""Colourization metrics: PSNR, colour accuracy, flicker (warp error), reference faithfulness.

Plain functions. Conventions (torch tensors or numpy arrays, channel-first like the rest of the
project; computed in float64 for float64 input, float32 otherwise; same array type as the input):

    rgb:  (*, 3, H, W) sRGB in [0, 1]
    ab:   (*, 2, H, W) Lab chroma, roughly [-128, 127]
    grey: (H, W) uint8 luma, for optical flow (OpenCV)
    flow: (H, W, 2) float32, OpenCV layout: (dx, dy) per pixel

Colourfulness (Hasler–Süsstrunk) lives in :mod:`colorize.color.saturation`; it is re-exported here.

Flicker is measured as a *warp error* (Lai et al., "Learning blind video temporal consistency",
ECCV 2018, in ab instead of RGB): frame t-1 is warped onto frame t along the optical flow of the
ORIGINAL frames, and the mean ab distance to frame t is taken over the pixels where the flow is
trustworthy (inside the frame and forward-backward consistent). The same flow and mask are used
for the output and for the original, so ``flicker ratio = warp error(output) / warp error(original)``
is 1 for an output exactly as stable as the real colours, above 1 when it flickers more.
"""

from __future__ import annotations

import math
from typing import Union

import cv2
import numpy as np
import torch

from colorize.color.saturation import colourfulness, colorfulness, mean_saturation

Array = Union[torch.Tensor, np.ndarray]

AB_RANGE = 255.0  # nominal extent of Lab a and b: -128..127
PSNR_CAP_DB = 100.0  # PSNR of identical images (instead of inf, so that means stay finite)


def _pair(x: Array, y: Array, channels: int, name: str) -> tuple[torch.Tensor, torch.Tensor, bool]:
    is_numpy = isinstance(x, np.ndarray)
    tx = torch.from_numpy(np.asarray(x)) if is_numpy else x
    ty = torch.from_numpy(np.asarray(y)) if isinstance(y, np.ndarray) else y
    if not isinstance(tx, torch.Tensor) or not isinstance(ty, torch.Tensor):
        raise TypeError(f"{name}: expected torch tensors or numpy arrays")
    if tx.shape != ty.shape:
        raise ValueError(f"{name}: shapes differ: {tuple(tx.shape)} vs {tuple(ty.shape)}")
    if tx.dim() < 3 or tx.shape[-3] != channels:
        raise ValueError(f"{name}: expected shape (*, {channels}, H, W), got {tuple(tx.shape)}")
    work = torch.float64 if tx.dtype == torch.float64 else torch.float32
    return tx.to(work), ty.to(tx.device, work), is_numpy


def _back(x: torch.Tensor, is_numpy: bool) -> Array:
    return x.cpu().numpy() if is_numpy else x


# ------------------------------------------------------------------------------------------ PSNR


def mse(pred: Array, target: Array, channels: int = 3) -> Array:
    """Mean squared error over the last three dimensions: (*, C, H, W) x2 -> (*)."""
    p, t, is_numpy = _pair(pred, target, channels, "mse")
    return _back(((p - t) ** 2).mean(dim=(-3, -2, -1)), is_numpy)


def psnr_from_mse(err: float, max_val: float = 1.0, cap: float = PSNR_CAP_DB) -> float:
    """``10 log10(max^2 / mse)`` in dB, capped at ``cap`` (identical images give ``cap``)."""
    if err <= 0.0:
        return cap
    return min(cap, 10.0 * math.log10(max_val**2 / err))


def psnr(pred: Array, target: Array, max_val: float = 1.0, cap: float = PSNR_CAP_DB) -> Array:
    """PSNR in dB of RGB images: (*, 3, H, W) in [0, max_val] x2 -> (*), capped at ``cap``.

    Identical images would give +inf; they give ``cap`` (100 dB by default) instead, so that
    per-frame PSNRs can be averaged. A uniform offset ``d`` gives exactly ``20 log10(max_val/d)``.
    """
    p, t, is_numpy = _pair(pred, target, 3, "psnr")
    err = ((p - t) ** 2).mean(dim=(-3, -2, -1))
    err = err.to(torch.float64)
    db = 10.0 * torch.log10(max_val**2 / err.clamp(min=1e-300))
    db = torch.where(err > 0, db, torch.full_like(db, cap)).clamp(max=cap)
    return _back(db, is_numpy)


# ------------------------------------------------------------------------------- colour accuracy


def color_accuracy(pred_ab: Array, target_ab: Array, eps: float = 0.02, ab_range: float = AB_RANGE) -> Array:
    """Colour accuracy of the CNN report (eq. 9): share of pixels whose a AND b both lie within
    ``eps * ab_range`` of the original's. (*, 2, H, W) x2 -> (*) in [0, 1].

    The report writes the normalisation as 1/(2HW) in front of a per-pixel product of the two
    channel indicators, which would cap the score at 0.5; we use 1/(HW), the share of pixels its
    text describes. With the defaults the tolerance is 2% of the ab range, 5.1 units.
    """
    p, t, is_numpy = _pair(pred_ab, target_ab, 2, "color_accuracy")
    tol = eps * ab_range
    ok = ((p - t).abs() <= tol).all(dim=-3)
    return _back(ok.to(p.dtype).mean(dim=(-2, -1)), is_numpy)


# ---------------------------------------------------------------------------- flicker (warp error)

_DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


class FlowEstimator:
    """OpenCV DIS optical flow between grey frames, (H, W) uint8 -> (H, W, 2) float32.

    ``flow = estimator(a, b)`` maps pixel x of ``a`` to ``x + flow[x]`` in ``b``.
    One instance holds one DIS object (cheap to reuse, not thread-safe).
    """

    def __init__(self, preset: str = "medium") -> None:
        if preset not in _DIS_PRESETS:
            raise ValueError(f"unknown DIS preset {preset!r}; choose one of {sorted(_DIS_PRESETS)}")
        self.preset = preset
        self._dis = cv2.DISOpticalFlow_create(_DIS_PRESETS[preset])

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        for name, g in (("a", a), ("b", b)):
            if g.dtype != np.uint8 or g.ndim != 2:
                raise ValueError(f"flow: {name} must be (H, W) uint8, got {g.shape} {g.dtype}")
        if a.shape != b.shape:
            raise ValueError(f"flow: frame sizes differ: {a.shape} vs {b.shape}")
        return self._dis.calc(np.ascontiguousarray(a), np.ascontiguousarray(b), None)


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return xs, ys


def warp(x: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Backward warp: ``out[:, y, x] = x[:, y + flow_y, x + flow_x]`` (bilinear, border replicated).

    x: (C, H, W) float; flow: (H, W, 2) float32 (dx, dy). Returns (C, H, W) float32.
    """
    if x.ndim != 3 or flow.shape != (x.shape[1], x.shape[2], 2):
        raise ValueError(f"warp: expected x (C, H, W) and flow (H, W, 2), got {x.shape}, {flow.shape}")
    xs, ys = _grid(x.shape[1], x.shape[2])
    map_x = xs + flow[..., 0]
    map_y = ys + flow[..., 1]
    hwc = np.ascontiguousarray(np.moveaxis(x.astype(np.float32), 0, -1))
    out = cv2.remap(hwc, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if out.ndim == 2:
        out = out[..., None]
    return np.moveaxis(out, -1, 0)


def valid_flow_mask(flow_bw: np.ndarray, flow_fw: np.ndarray) -> np.ndarray:
    """Where the backward flow can be trusted: (H, W) bool.

    ``flow_bw`` maps frame t to frame t-1, ``flow_fw`` maps t-1 to t. A pixel is valid when its
    target lies inside frame t-1 and the round trip closes (Sundaram et al. 2010, as used by
    Ruder et al. and Lai et al.): ``|w + ŵ|² <= 0.01 (|w|² + |ŵ|²) + 0.5`` with ``w`` the backward
    flow and ``ŵ`` the forward flow sampled where ``w`` lands. Occluded pixels fail the test.
    """
    h, w = flow_bw.shape[:2]
    xs, ys = _grid(h, w)
    tx = xs + flow_bw[..., 0]
    ty = ys + flow_bw[..., 1]
    inside = (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
    fw_at = cv2.remap(flow_fw.astype(np.float32), tx, ty, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    loop = flow_bw + fw_at
    lhs = (loop**2).sum(-1)
    rhs = 0.01 * ((flow_bw**2).sum(-1) + (fw_at**2).sum(-1)) + 0.5
    return inside & (lhs <= rhs)


def warp_error_sum(prev_ab: np.ndarray, cur_ab: np.ndarray, flow_bw: np.ndarray, mask: np.ndarray) -> tuple[float, int]:
    """Sum of ``|ab_t - warp(ab_{t-1})|`` (Euclidean in ab) over ``mask``, and the pixel count.

    prev_ab, cur_ab: (2, H, W); flow_bw: (H, W, 2) from frame t to frame t-1; mask: (H, W) bool.
    Returned as sums so a clip's error can be accumulated frame by frame.
    """
    warped = warp(np.asarray(prev_ab, dtype=np.float32), flow_bw)
    diff = np.sqrt(((np.asarray(cur_ab, dtype=np.float32) - warped) ** 2).sum(0))
    return float(diff[mask].sum(dtype=np.float64)), int(mask.sum())


def warp_error(prev_ab: np.ndarray, cur_ab: np.ndarray, flow_bw: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean ab warp error between two frames (see :func:`warp_error_sum`); NaN if no valid pixel."""
    if mask is None:
        mask = np.ones(flow_bw.shape[:2], dtype=bool)
    total, count = warp_error_sum(prev_ab, cur_ab, flow_bw, mask)
    return total / count if count else float("nan")


# ----------------------------------------------------------------------------------- dark cast

DARK_L = 10.0  # "dark" pixels for the dark-cast figure: L below this


def dark_cast_sum(l: Array, ab: Array, threshold: float = DARK_L) -> tuple[float, int]:
    """Sum of chroma |ab| over the pixels whose L (*, 1, H, W) is below ``threshold``, and their
    count (add up over frames, then divide). A colourization that keeps blacks neutral scores
    near 0; dark areas painted navy score high. ab: (*, 2, H, W) of the same size."""
    lt = torch.as_tensor(np.asarray(l)) if isinstance(l, np.ndarray) else l
    abt = torch.as_tensor(np.asarray(ab)) if isinstance(ab, np.ndarray) else ab
    work = torch.float64 if abt.dtype == torch.float64 else torch.float32
    lt, abt = lt.detach().to(work), abt.detach().to(lt.device, work)
    if lt.dim() < 3 or lt.shape[-3] != 1:
        raise ValueError(f"dark_cast_sum: expected L of shape (*, 1, H, W), got {tuple(lt.shape)}")
    if abt.dim() != lt.dim() or abt.shape[-3] != 2 or abt.shape[:-3] + abt.shape[-2:] != lt.shape[:-3] + lt.shape[-2:]:
        raise ValueError(f"dark_cast_sum: ab {tuple(abt.shape)} does not match L {tuple(lt.shape)}")
    dark = lt < threshold
    chroma = torch.sqrt((abt * abt).sum(-3, keepdim=True))
    return float(chroma[dark].sum(dtype=torch.float64)), int(dark.sum())


# ------------------------------------------------------------------------ reference faithfulness

HIST_BINS = 32  # over [-128, 128): 8 ab units per bin


def ab_histogram(ab: Array, bins: int = HIST_BINS) -> np.ndarray:
    """Unnormalised 2-D histogram of the chroma of (*, 2, H, W) ab: (bins, bins) float64 counts.

    Bins are uniform over [-128, 128) in a and b; values outside are clipped into the edge bins.
    Counts (not densities) so that histograms of many frames can be summed.
    """
    a = ab.detach().cpu().numpy() if isinstance(ab, torch.Tensor) else np.asarray(ab)
    if a.ndim < 3 or a.shape[-3] != 2:
        raise ValueError(f"ab_histogram: expected (*, 2, H, W), got {a.shape}")
    a = np.moveaxis(a, -3, 0).reshape(2, -1).astype(np.float32)
    idx = np.clip(((a + 128.0) * (bins / 256.0)).astype(np.int64), 0, bins - 1)
    flat = idx[0] * bins + idx[1]
    return np.bincount(flat, minlength=bins * bins).reshape(bins, bins).astype(np.float64)


def hist_distance(h1: np.ndarray, h2: np.ndarray) -> float:
    """Hellinger distance between two histograms (normalised here): 0 identical .. 1 disjoint."""
    s1, s2 = h1.sum(), h2.sum()
    if s1 <= 0 or s2 <= 0:
        raise ValueError("hist_distance: empty histogram")
    bc = np.sqrt((h1 / s1) * (h2 / s2)).sum()
    return float(math.sqrt(max(0.0, 1.0 - bc)))


def reference_distance(output_ab: Array, reference_ab: Array, bins: int = HIST_BINS) -> float:
    """Reference faithfulness: Hellinger distance between the ab histograms of the output and of
    the reference, in [0, 1]; lower = colours closer to the reference's palette.

    It compares palettes, not positions, so it is meaningful for a reference from another scene.
    The output's histogram may be summed over all frames of a clip (see :func:`ab_histogram`).
    """
    return hist_distance(ab_histogram(output_ab, bins), ab_histogram(reference_ab, bins))


__all__ = [
    "AB_RANGE",
    "PSNR_CAP_DB",
    "mse",
    "psnr",
    "psnr_from_mse",
    "color_accuracy",
    "colourfulness",
    "colorfulness",
    "mean_saturation",
    "FlowEstimator",
    "warp",
    "valid_flow_mask",
    "warp_error",
    "warp_error_sum",
    "ab_histogram",
    "hist_distance",
    "reference_distance",
]
