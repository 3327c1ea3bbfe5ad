"""Split a frame into lightness, and merge predicted chroma back at full resolution.

Conventions: numpy uint8/uint16 arrays only at the I/O edge; L in [0, 100]; ab roughly
[-128, 127]; sizes are ``(height, width)``.

The video merge keeps the source's Y' plane and replaces only Cb/Cr (the *luma guarantee*):
merging L + ab in Lab and converting back to Y'CbCr would change Y' wherever the colour is
saturated (Y' is not a function of L alone), so we take only the chroma of the merged picture.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
import torch

from colorize.color.lab import lab_to_rgb

_Y_WEIGHTS = np.array([0.212671, 0.715160, 0.072169], dtype=np.float32)  # sRGB -> Y (D65), as lab.py
_EPS = 0.008856
_KAPPA = 903.3

# Y'CbCr luma coefficients (Kr, Kb) per matrix.
KR_KB = {
    "bt709": (0.2126, 0.0722),
    "smpte170m": (0.299, 0.114),
    "bt470bg": (0.299, 0.114),
    "fcc": (0.30, 0.11),
    "smpte240m": (0.212, 0.087),
    "bt2020nc": (0.2627, 0.0593),
    "bt2020c": (0.2627, 0.0593),
}


@lru_cache(maxsize=4)
def _linear_lut(levels: int) -> np.ndarray:
    """sRGB code value -> linear light, for every code of an 8- or 16-bit channel."""
    v = np.arange(levels, dtype=np.float64) / (levels - 1)
    lin = np.where(v > 0.04045, ((v + 0.055) / 1.055) ** 2.4, v / 12.92)
    return lin.astype(np.float32)


@lru_cache(maxsize=4)
def _grey_l_lut(levels: int) -> np.ndarray:
    """Grey code value (R = G = B) -> L, for every code of an 8- or 16-bit channel."""
    y = _linear_lut(levels).astype(np.float64) * float(_Y_WEIGHTS.astype(np.float64).sum())
    return np.where(y > _EPS, 116.0 * np.cbrt(np.maximum(y, _EPS)) - 16.0, _KAPPA * y).astype(np.float32)


def _check_rgb(rgb: np.ndarray) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 array, got {getattr(rgb, 'shape', type(rgb))}")
    if rgb.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"expected uint8 or uint16 RGB, got {rgb.dtype}")


def _l_from_y(y: np.ndarray) -> np.ndarray:
    return np.where(y > _EPS, 116.0 * np.cbrt(np.maximum(y, _EPS)) - 16.0, _KAPPA * y).astype(np.float32)


def l_numpy(rgb: np.ndarray) -> np.ndarray:
    """uint8/uint16 H x W x 3 sRGB -> L (H, W) float32 in [0, 100] (same formula as lab.rgb_to_l).

    Table look-ups instead of powers, and a single channel when the picture is grey (the common
    case for black-and-white film), keep this at a few milliseconds per HD frame.
    """
    _check_rgb(rgb)
    levels = 256 if rgb.dtype == np.uint8 else 65536
    r, g, b = rgb[:, :, 0], rgb[:, :, 1], rgb[:, :, 2]
    if np.array_equal(r, g) and np.array_equal(g, b):
        return _grey_l_lut(levels)[g]
    lut = _linear_lut(levels)
    y = lut[r] * _Y_WEIGHTS[0] + lut[g] * _Y_WEIGHTS[1] + lut[b] * _Y_WEIGHTS[2]
    return _l_from_y(y)


def full_l(rgb: np.ndarray) -> torch.Tensor:
    """uint8/uint16 H x W x 3 sRGB -> L (1, H, W) float32 in [0, 100] at full resolution."""
    return torch.from_numpy(l_numpy(rgb)).unsqueeze(0)


def resize_l(l: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Area-resample L (1, H, W) to ``size`` = (height, width)."""
    h, w = size
    if tuple(l.shape[-2:]) == (h, w):
        return l
    arr = l[0].detach().cpu().numpy()
    interp = cv2.INTER_AREA if h <= arr.shape[0] and w <= arr.shape[1] else cv2.INTER_LINEAR
    return torch.from_numpy(cv2.resize(arr, (w, h), interpolation=interp)).unsqueeze(0)


def rgb_to_work_l(rgb: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """uint8/uint16 H x W x 3 sRGB -> L (1, h, w) at the working ``size`` = (h, w), area-resampled."""
    return resize_l(full_l(rgb), size)


def work_size(height: int, width: int, short_side: int, multiple: int = 1) -> tuple[int, int]:
    """(h, w) with the short side near ``short_side``, aspect kept, both multiples of ``multiple``.
    Never upscales beyond the source (rounded to the multiple)."""
    scale = min(1.0, short_side / min(height, width))
    h = max(multiple, int(round(height * scale / multiple)) * multiple)
    w = max(multiple, int(round(width * scale / multiple)) * multiple)
    return h, w


def _ab_tensor(ab: np.ndarray | torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    t = torch.as_tensor(ab, dtype=torch.float32)
    if t.dim() == 3 and t.shape[-1] == 2:
        t = t.permute(2, 0, 1)
    if tuple(t.shape) != (2, *shape):
        raise ValueError(f"ab must be H x W x 2 (or 2 x H x W) at the frame size {shape}, got {tuple(ab.shape)}")
    return t


def merge_rgb(l: torch.Tensor, ab: np.ndarray | torch.Tensor) -> torch.Tensor:
    """L (1, H, W) + ab (H, W, 2) -> sRGB (3, H, W) float32 in [0, 1]."""
    lab = torch.cat((l.to(torch.float32), _ab_tensor(ab, tuple(l.shape[-2:]))), dim=0)
    return lab_to_rgb(lab)


def quantize_rgb(rgb: torch.Tensor, dtype: np.dtype) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> H x W x 3 uint8/uint16."""
    top = 255.0 if np.dtype(dtype) == np.uint8 else 65535.0
    arr = (rgb.permute(1, 2, 0) * top).round_().clamp_(0, top).numpy()
    return arr.astype(dtype)


def _resize_planes(l: np.ndarray, ab: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    h, w = size
    if (h, w) == l.shape:
        return l, ab
    return cv2.resize(l, (w, h), interpolation=cv2.INTER_AREA), cv2.resize(ab, (w, h), interpolation=cv2.INTER_AREA)


@lru_cache(maxsize=1)
def _srgb_lut() -> np.ndarray:
    """Linear light in [0, 1] sampled at 65536 steps -> sRGB-encoded value (as lab.linear_to_srgb)."""
    lin = np.arange(65536, dtype=np.float64) / 65535.0
    srgb = np.where(lin > 0.0031308, 1.055 * np.maximum(lin, 0.0031308) ** (1 / 2.4) - 0.055, 12.92 * lin)
    return srgb.astype(np.float32)


_XYZ2RGB = np.array(
    [[3.240479, -1.537150, -0.498535], [-0.969256, 1.875992, 0.041556], [0.055648, -0.204043, 1.057311]],
    dtype=np.float32,
)
_WHITE = (0.950456, 1.0, 1.088754)


def _finv(f: np.ndarray) -> np.ndarray:
    return np.where(f > 6.0 / 29.0, f * f * f, (116.0 * f - 16.0) / _KAPPA)


def lab_to_srgb_numpy(l: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, ...]:
    """Lab planes (float32) -> clipped sRGB planes in [0, 1]; lab.lab_to_rgb without powers."""
    fy = (l + 16.0) / 116.0
    x = _finv(fy + a / 500.0) * np.float32(_WHITE[0])
    y = _finv(fy)
    z = _finv(fy - b / 200.0) * np.float32(_WHITE[2])
    lut = _srgb_lut()
    out = []
    for row in _XYZ2RGB:
        lin = row[0] * x + row[1] * y + row[2] * z
        idx = np.clip(lin * 65535.0 + 0.5, 0.0, 65535.0).astype(np.int32)
        out.append(lut[idx])
    return tuple(out)


def chroma_planes(
    l: np.ndarray | torch.Tensor,
    ab: np.ndarray | torch.Tensor,
    matrix: str,
    full_range: bool,
    bit_depth: int,
    plane_size: tuple[int, int],
    interlaced: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Cb, Cr code values of the picture L + ab, at the chroma ``plane_size`` = (h, w).

    l: (H, W) or (1, H, W) in [0, 100]; ab: H x W x 2. L and ab are area-resampled to the
    chroma plane first (4:2:0 does a quarter of the work), then Lab -> sRGB -> Y'CbCr with the
    output's matrix and range, rounded and clipped to the legal range. ``interlaced``: subsample
    each field on its own.
    """
    l = np.asarray(l.detach().cpu() if isinstance(l, torch.Tensor) else l, dtype=np.float32)
    l = l.reshape(l.shape[-2:])
    ab = np.asarray(ab.detach().cpu() if isinstance(ab, torch.Tensor) else ab, dtype=np.float32)
    if ab.shape != (*l.shape, 2):
        raise ValueError(f"ab must be H x W x 2 at the frame size {l.shape}, got {ab.shape}")
    h, w = plane_size
    if interlaced and h < l.shape[0]:
        # Interlaced 4:2:0: each field has its own chroma rows (even rows: top field); averaging
        # across fields would blend two moments in time.
        top = _resize_planes(l[0::2], ab[0::2], ((h + 1) // 2, w))
        bottom = _resize_planes(l[1::2], ab[1::2], (h // 2, w))
        l = np.empty((h, w), np.float32)
        ab = np.empty((h, w, 2), np.float32)
        l[0::2], ab[0::2] = top
        l[1::2], ab[1::2] = bottom
    else:
        l, ab = _resize_planes(l, ab, (h, w))
    r, g, b = lab_to_srgb_numpy(l, ab[:, :, 0], ab[:, :, 1])
    kr, kb = KR_KB.get(matrix, KR_KB["bt709"])
    y = kr * r + (1.0 - kr - kb) * g + kb * b
    scale = float(1 << (bit_depth - 8))
    mid = 128.0 * scale
    span = float((1 << bit_depth) - 1) if full_range else 224.0 * scale
    lo, hi = (0.0, float((1 << bit_depth) - 1)) if full_range else (16.0 * scale, 240.0 * scale)
    dtype = np.uint8 if bit_depth <= 8 else np.uint16
    cb = np.clip(np.rint(mid + (span / (2.0 * (1.0 - kb))) * (b - y)), lo, hi).astype(dtype)
    cr = np.clip(np.rint(mid + (span / (2.0 * (1.0 - kr))) * (r - y)), lo, hi).astype(dtype)
    return cb, cr


def luma_plane(rgb: np.ndarray, matrix: str, full_range: bool, bit_depth: int) -> np.ndarray:
    """Y' code values of an RGB source that has no Y' plane of its own (uint8/uint16 H x W x 3)."""
    kr, kb = KR_KB.get(matrix, KR_KB["bt709"])
    x = rgb.astype(np.float32) / (255.0 if rgb.dtype == np.uint8 else 65535.0)
    y = kr * x[:, :, 0] + (1.0 - kr - kb) * x[:, :, 1] + kb * x[:, :, 2]
    scale = float(1 << (bit_depth - 8))
    lo, span = (0.0, (1 << bit_depth) - 1.0) if full_range else (16.0 * scale, 219.0 * scale)
    return np.rint(lo + span * y).astype(np.uint8 if bit_depth <= 8 else np.uint16)
