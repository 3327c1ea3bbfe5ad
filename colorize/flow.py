"""Optical-flow utilities: backward warping, forward-backward occlusion masks, OpenCV DIS.

Flow convention (the one :class:`~colorize.training.family.TrainBatch` uses): a flow field
``flow`` (B, 2, H, W) *for frame s towards frame t* stores, for each pixel (x, y) of frame s, the
displacement (dx, dy) in pixels to where that pixel is found in frame t:
``frame_s(x, y) ~ frame_t(x + dx, y + dy)``. :func:`warp` ``(frame_t, flow)`` therefore brings
frame t into frame s's pixel grid (backward warping).

These are light functions (torch, numpy, OpenCV only), shared by the inference path (the
``selfreg`` model's refine pass) and by training (temporal losses, occlusion masks); they live
outside :mod:`colorize.training` so that inference never imports training code.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
import torch
from torch.nn import functional as F

_DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


def _at_least_float32(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _check_flow(img: torch.Tensor, flow: torch.Tensor) -> None:
    if img.dim() != 4 or flow.dim() != 4 or flow.shape[1] != 2:
        raise ValueError(f"expected img (B, C, H, W) and flow (B, 2, H, W), got {tuple(img.shape)} and {tuple(flow.shape)}")
    if img.shape[0] != flow.shape[0] or img.shape[-2:] != flow.shape[-2:]:
        raise ValueError(f"img {tuple(img.shape)} and flow {tuple(flow.shape)} differ in batch or size")


def base_grid(h: int, w: int, device=None, dtype=None) -> torch.Tensor:
    """Pixel coordinates (1, 2, H, W): channel 0 is x, channel 1 is y."""
    ys, xs = torch.meshgrid(
        torch.arange(h, device=device, dtype=dtype), torch.arange(w, device=device, dtype=dtype), indexing="ij"
    )
    return torch.stack((xs, ys))[None]


@lru_cache(maxsize=8)
def _norm_grid(h: int, w: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """grid_sample coordinates of every pixel (1, H, W, 2) and the pixel -> [-1, 1] scale (2,)."""
    scale = torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], device=device, dtype=dtype)
    grid = base_grid(h, w, device, dtype).permute(0, 2, 3, 1) * scale - 1.0
    return grid, scale


def sample_grid(flow: torch.Tensor) -> torch.Tensor:
    """``flow`` (B, 2, H, W) in pixels -> grid_sample grid (B, H, W, 2), align_corners=True units."""
    h, w = flow.shape[-2:]
    with torch.no_grad():
        grid, scale = _norm_grid(h, w, flow.device, flow.dtype)
    return torch.addcmul(grid, flow.permute(0, 2, 3, 1), scale)


def warp(img: torch.Tensor, flow: torch.Tensor, padding_mode: str = "border") -> torch.Tensor:
    """Backward-warp ``img`` (B, C, H, W) with ``flow`` (B, 2, H, W) in pixels, bilinearly.

    ``out(x, y) = img(x + flow_x(x, y), y + flow_y(x, y))``. Differentiable in both arguments.
    """
    _check_flow(img, flow)
    # Sampled in float32 whatever the model's precision: half-precision pixel coordinates are off
    # by up to half a pixel on a 1920-wide frame, and CPU grid_sample in float16 returned NaN for
    # finite inputs (the selfreg refine pass in half precision).
    work = _at_least_float32(img.dtype)
    grid = sample_grid(flow.to(work))
    out = F.grid_sample(img.to(work), grid, mode="bilinear", padding_mode=padding_mode, align_corners=True)
    return out.to(img.dtype)


def _inside(grid: torch.Tensor) -> torch.Tensor:
    return (grid.abs() <= 1.0 + 1e-6).all(-1)[:, None]


def inside_mask(flow: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W): 1 where ``flow`` points inside the frame, else 0."""
    return _inside(sample_grid(flow.to(_at_least_float32(flow.dtype)))).to(flow.dtype)


def occlusion_mask(
    flow_st: torch.Tensor, flow_ts: torch.Tensor, alpha1: float = 0.01, alpha2: float = 0.5
) -> torch.Tensor:
    """Forward-backward consistency (Sundaram et al. 2010): 1 = visible in both frames, 0 = occluded.

    ``flow_st`` (B, 2, H, W) maps frame s to t; ``flow_ts`` maps t back to s. A pixel of s is kept when
    following it to t and back lands near where it started:
    ``|f_st + f_ts(warped)|^2 < alpha1 (|f_st|^2 + |f_ts(warped)|^2) + alpha2`` and it lands inside t.
    """
    _check_flow(flow_ts, flow_st)
    dtype = flow_st.dtype
    work = _at_least_float32(dtype)  # float32 coordinates, as in warp()
    flow_st, flow_ts = flow_st.to(work), flow_ts.to(work)
    grid = sample_grid(flow_st)
    back = F.grid_sample(flow_ts, grid, mode="bilinear", padding_mode="border", align_corners=True)
    err = (flow_st + back).pow(2).sum(1, keepdim=True)
    mag = flow_st.pow(2).sum(1, keepdim=True) + back.pow(2).sum(1, keepdim=True)
    return ((err < alpha1 * mag + alpha2) & _inside(grid)).to(dtype)


def dis_flow(grey_s: np.ndarray, grey_t: np.ndarray, preset: str = "ultrafast") -> np.ndarray:
    """OpenCV DIS flow from frame s to frame t on uint8 grey frames (H, W) -> (H, W, 2) float32.

    ``grey_s(x, y) ~ grey_t(x + flow[..., 0], y + flow[..., 1])``, i.e. ready for :func:`warp` of
    frame t into frame s.
    """
    for g in (grey_s, grey_t):
        if not isinstance(g, np.ndarray) or g.dtype != np.uint8 or g.ndim != 2:
            raise ValueError("dis_flow expects uint8 grey frames of shape (H, W)")
    if grey_s.shape != grey_t.shape:
        raise ValueError(f"frames differ in size: {grey_s.shape} vs {grey_t.shape}")
    if preset not in _DIS_PRESETS:
        raise ValueError(f"unknown DIS preset {preset!r}; choose one of {sorted(_DIS_PRESETS)}")
    dis = cv2.DISOpticalFlow_create(_DIS_PRESETS[preset])
    return dis.calc(np.ascontiguousarray(grey_s), np.ascontiguousarray(grey_t), None)


def l_to_uint8(l: torch.Tensor) -> np.ndarray:
    """L (1, H, W) or (H, W) in [0, 100] -> uint8 grey (H, W) for OpenCV (L scaled, not sRGB)."""
    return (l.detach().float().reshape(l.shape[-2:]).clamp(0, 100) * 2.55 + 0.5).to(torch.uint8).cpu().numpy()


def flow_to_tensor(flow: np.ndarray, device=None, dtype=torch.float32) -> torch.Tensor:
    """(H, W, 2) numpy flow -> (1, 2, H, W) tensor."""
    return torch.from_numpy(np.ascontiguousarray(flow)).permute(2, 0, 1)[None].to(device=device, dtype=dtype)


def dis_flow_pair(
    grey_s: np.ndarray, grey_t: np.ndarray, device=None, dtype=torch.float32, preset: str = "ultrafast"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Flows both ways and occlusion masks both ways for a frame pair.

    Returns ``(flow_st, flow_ts, mask_s, mask_t)``: flows (1, 2, H, W), masks (1, 1, H, W) where
    ``mask_s`` lives on frame s's grid (1 = that pixel of s is visible in t).
    """
    f_st = flow_to_tensor(dis_flow(grey_s, grey_t, preset), device, dtype)
    f_ts = flow_to_tensor(dis_flow(grey_t, grey_s, preset), device, dtype)
    return f_st, f_ts, occlusion_mask(f_st, f_ts), occlusion_mask(f_ts, f_st)


def confidence_map(
    current: torch.Tensor, warped: torch.Tensor, mask: torch.Tensor, alpha: float = 15.0
) -> torch.Tensor:
    """Lei & Chen eq. (4): ``max(1 - alpha * |current - warped|, 0) * mask`` -> (B, 1, H, W) in [0, 1].

    ``current`` and ``warped`` (B, C, H, W) must be on a unit scale (the model feeds ab / 128 and
    L / 100), so with alpha = 15 confidence reaches 0 at a difference of about 8.5 ab or 6.7 L units.
    The per-pixel difference is the mean over channels. Unlike the paper's literal formula, which
    multiplies the *difference* by the mask and so gives occluded pixels full confidence, the mask
    multiplies the confidence: an occluded pixel has no trustworthy neighbour colour.
    """
    diff = (current - warped).abs().mean(1, keepdim=True)
    return (1.0 - alpha * diff).clamp(min=0.0) * mask
