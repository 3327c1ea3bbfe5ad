"""Fast Global Smoother (Min et al., "Fast Global Image Smoothing Based on Weighted Least Squares",
IEEE TIP 2014), as used by the official Deep Exemplar-based Video Colorization post-filter.

The official ``test.py`` calls ``cv2.ximgproc.createFastGlobalSmootherFilter(guide, 500, 4)``
(``lambda_attenuation=0.25``, ``num_iter=3``) on each of a and b. colorize depends on
opencv-contrib, so :func:`fast_global_smoother` normally runs ``cv2.ximgproc`` itself; where only
plain OpenCV is installed (someone else's environment) it falls back to a numpy port of OpenCV's
``fgs_filter.cpp`` that reproduces its float32 operation order, including the association its
SIMD kernels use, so both paths give the same bytes on the official single-stripe setting
(``cv2.setNumThreads(0)``).

Shapes: ``guide`` (H, W) uint8; ``src`` (H, W) or (C, H, W) float32; result like ``src``.
"""

from __future__ import annotations

import numpy as np

try:  # opencv-contrib-python(-headless) only; plain opencv has no ximgproc
    import cv2

    _XIMGPROC = getattr(cv2, "ximgproc", None)
except ImportError:  # pragma: no cover - opencv is a dependency
    cv2 = None
    _XIMGPROC = None

__all__ = ["fast_global_smoother", "fgs_numpy", "fgs_opencv", "has_ximgproc", "FastGlobalSmoother"]

OFFICIAL_LAMBDA = 500.0
OFFICIAL_SIGMA_COLOR = 4.0
OFFICIAL_ATTENUATION = 0.25
OFFICIAL_NUM_ITER = 3


def has_ximgproc() -> bool:
    return _XIMGPROC is not None


def _check(guide: np.ndarray, src: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    if guide.dtype != np.uint8 or guide.ndim != 2:
        raise ValueError(f"guide must be a (H, W) uint8 array, got {guide.dtype} {guide.shape}")
    single = src.ndim == 2
    planes = src[None] if single else src
    if planes.ndim != 3 or planes.shape[1:] != guide.shape:
        raise ValueError(f"src {src.shape} does not match guide {guide.shape}")
    if guide.shape[0] < 2 or guide.shape[1] < 2:
        raise ValueError(f"image too small for the smoother: {guide.shape}")
    return guide, np.ascontiguousarray(planes, dtype=np.float32), single


def fgs_opencv(guide: np.ndarray, src: np.ndarray, lam: float = OFFICIAL_LAMBDA,
               sigma_color: float = OFFICIAL_SIGMA_COLOR, attenuation: float = OFFICIAL_ATTENUATION,
               num_iter: int = OFFICIAL_NUM_ITER) -> np.ndarray:
    """The official filter through ``cv2.ximgproc`` (opencv-contrib). Raises if not installed."""
    if _XIMGPROC is None:
        raise RuntimeError("cv2.ximgproc is not available (install opencv-contrib-python-headless)")
    guide, planes, single = _check(guide, src)
    threads = cv2.getNumThreads()
    cv2.setNumThreads(0)  # one stripe, as the official utils/util.py sets at import
    try:
        f = _XIMGPROC.createFastGlobalSmootherFilter(guide, lam, sigma_color, attenuation, num_iter)
        out = np.stack([f.filter(p) for p in planes])
    finally:
        cv2.setNumThreads(threads)
    return out[0] if single else out


def _weights(guide: np.ndarray, sigma_color: float) -> tuple[np.ndarray, np.ndarray]:
    """Chor (H, W) and Cvert (H, W): LUT[d^2] = -exp(-|d| / sigma) in float64, cast to float32."""
    lut = (-np.exp(-np.sqrt(np.arange(256 * 256, dtype=np.float64)) / sigma_color)).astype(np.float32)
    g = guide.astype(np.int32)
    ch = np.zeros(g.shape, np.float32)
    cv = np.zeros(g.shape, np.float32)
    ch[:, :-1] = lut[(g[:, :-1] - g[:, 1:]) ** 2]
    cv[:-1, :] = lut[(g[:-1, :] - g[1:, :]) ** 2]
    return ch, cv


def _solve(u: np.ndarray, c_all: np.ndarray, simd_rows: np.ndarray, simd_steps: int, vertical: bool) -> None:
    """Thomas solve of (I + lam L_w) x = u along axis 0 of ``u`` (n, C, m), in place, float32.

    ``c_all`` (n, m) = lam * C. ``simd_rows`` (m,) bool: the lanes OpenCV's SIMD kernel handles,
    where the denominator is associated differently (horizontal: steps 1..simd_steps;
    vertical: every step). The arithmetic mirrors fgs_filter.cpp so float32 results are identical.
    """
    n = u.shape[0]
    one = np.float32(1.0)
    d = np.empty_like(c_all)
    c_prev = c_all[0]
    den0 = one - c_prev
    d[0] = c_prev / den0
    u[0] /= den0
    for j in range(1, n):
        c_cur = c_all[j]
        dc = d[j - 1] * c_prev
        plain = ((one - c_prev) - c_cur) - dc
        if vertical:
            simd = one - ((c_prev + c_cur) + dc)
        elif j <= simd_steps:
            simd = (one - (c_cur + c_prev)) - dc
        else:
            simd = plain
        den = np.where(simd_rows, simd, plain)
        d[j] = c_cur / den
        u[j] = (u[j] - u[j - 1] * c_prev[None]) / den[None]
        c_prev = c_cur
    for j in range(n - 2, -1, -1):
        u[j] -= d[j][None] * u[j + 1]


def fgs_numpy(guide: np.ndarray, src: np.ndarray, lam: float = OFFICIAL_LAMBDA,
              sigma_color: float = OFFICIAL_SIGMA_COLOR, attenuation: float = OFFICIAL_ATTENUATION,
              num_iter: int = OFFICIAL_NUM_ITER) -> np.ndarray:
    """numpy port of OpenCV's FastGlobalSmootherFilter (single stripe), float32 throughout."""
    guide, planes, single = _check(guide, src)
    h, w = guide.shape
    ch, cv = _weights(guide, sigma_color)
    rows_simd = np.arange(h) < 4 * (h // 4)
    cols_simd = np.arange(w) < 4 * (w // 4)
    steps_simd = 4 * -(-(w - 4) // 4)
    ch_t = np.ascontiguousarray(ch.T)  # (W, H): step along the width
    x_h = np.ascontiguousarray(planes.transpose(2, 0, 1))  # (W, C, H)
    lam32 = np.float32(lam)
    for _ in range(num_iter):
        _solve(x_h, lam32 * ch_t, rows_simd, steps_simd, vertical=False)
        x_v = np.ascontiguousarray(x_h.transpose(2, 1, 0))  # (H, C, W)
        _solve(x_v, lam32 * cv, cols_simd, 0, vertical=True)
        x_h = np.ascontiguousarray(x_v.transpose(2, 1, 0))
        lam32 = np.float32(lam32 * np.float32(attenuation))
    out = np.ascontiguousarray(x_h.transpose(1, 2, 0))
    return out[0] if single else out


def fast_global_smoother(guide: np.ndarray, src: np.ndarray, lam: float = OFFICIAL_LAMBDA,
                         sigma_color: float = OFFICIAL_SIGMA_COLOR,
                         attenuation: float = OFFICIAL_ATTENUATION, num_iter: int = OFFICIAL_NUM_ITER,
                         backend: str = "auto") -> np.ndarray:
    """The official DEVC post-filter. ``backend``: "auto" (opencv-contrib if present), "opencv", "numpy"."""
    if backend == "auto":
        backend = "opencv" if has_ximgproc() else "numpy"
    if backend == "opencv":
        return fgs_opencv(guide, src, lam, sigma_color, attenuation, num_iter)
    if backend == "numpy":
        return fgs_numpy(guide, src, lam, sigma_color, attenuation, num_iter)
    raise ValueError(f"unknown smoother backend {backend!r}; use auto, opencv or numpy")


class FastGlobalSmoother:
    """Callable twin of :func:`fast_global_smoother` with fixed parameters."""

    def __init__(self, lam: float = OFFICIAL_LAMBDA, sigma_color: float = OFFICIAL_SIGMA_COLOR,
                 attenuation: float = OFFICIAL_ATTENUATION, num_iter: int = OFFICIAL_NUM_ITER,
                 backend: str = "auto") -> None:
        self.params = (lam, sigma_color, attenuation, num_iter)
        self.backend = backend

    def __call__(self, guide: np.ndarray, src: np.ndarray) -> np.ndarray:
        return fast_global_smoother(guide, src, *self.params, backend=self.backend)
