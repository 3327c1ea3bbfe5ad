"""Self-augmented references for exemplar training (Color2Embed sec. 3.2; Lee et al. CVPR 2020).

A training sample needs a colour reference whose colours are *known* to fit the target, yet which
cannot be copied pixel by pixel: the ground-truth frame itself after a random thin-plate-spline
(TPS) and affine warp (rotation, scale = crop, shift, horizontal flip) and mild colour noise. Some
samples use another frame of the same clip instead (the propagation mode of Deep Exemplar-based
Video Colorization, sec. 3.3), and some an unrelated photo, so the network also learns to fall back
on plausible colours when nothing in the reference matches.

Colour noise touches brightness, contrast and adds Gaussian pixel noise (sigma = 5/255 as in
Color2Embed) but never shifts hue: the L1 target is the ground-truth chroma, so a hue-shifted
reference would teach the network to distrust the reference's colours.

All functions take an explicit ``torch.Generator`` so a training step is reproducible from its
step number (exact resume). Images are sRGB (B, 3, H, W) in [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F

# Kinds of reference, as returned by :func:`make_reference`.
SELF_WARPED = 0  # the target frame, warped and noised
CLIP_FRAME = 1  # another frame of the same clip, lightly augmented (propagation mode)
UNRELATED = 2  # an unrelated photo (fall-back behaviour)


@dataclass(frozen=True)
class ReferenceAugConfig:
    p_clip_frame: float = 0.2
    p_unrelated: float = 0.1
    p_tps: float = 0.8
    tps_points: int = 4  # control points per side
    tps_strength: float = 0.10  # std of control-point displacement, in [-1, 1] units
    rot_deg: float = 15.0
    scale: tuple[float, float] = (0.7, 1.1)  # < 1 zooms in (a crop)
    shift: float = 0.15
    p_flip: float = 0.5
    noise_sigma: float = 5.0 / 255.0
    brightness: float = 0.08
    contrast: float = 0.12


def _uniform(n: int, lo: float, hi: float, g: torch.Generator | None) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64)


def _tps_kernel(d2: torch.Tensor) -> torch.Tensor:
    """U(r) = r^2 log r^2, with U(0) = 0."""
    return torch.where(d2 > 0, d2 * torch.log(d2.clamp(min=1e-12)), torch.zeros_like(d2))


def tps_grid(ctrl: torch.Tensor, target: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Thin-plate spline sampling grid (B, H, W, 2) for :func:`torch.nn.functional.grid_sample`.

    ``ctrl`` (B, K, 2): control points in output coordinates ([-1, 1], x then y); ``target``
    (B, K, 2): where each control point samples the input. The spline interpolates exactly through
    the K pairs and is the smoothest (minimum bending energy) map that does.
    """
    if ctrl.shape != target.shape or ctrl.dim() != 3 or ctrl.shape[-1] != 2:
        raise ValueError(f"ctrl and target must both be (B, K, 2), got {tuple(ctrl.shape)} and {tuple(target.shape)}")
    b, k, _ = ctrl.shape
    c = ctrl.double()
    kmat = _tps_kernel(torch.cdist(c, c).pow(2))
    p = torch.cat((torch.ones(b, k, 1, dtype=c.dtype), c), -1)  # (B, K, 3)
    top = torch.cat((kmat, p), -1)
    bottom = torch.cat((p.transpose(1, 2), torch.zeros(b, 3, 3, dtype=c.dtype)), -1)
    system = torch.cat((top, bottom), 1)  # (B, K+3, K+3)
    rhs = torch.cat((target.double(), torch.zeros(b, 3, 2, dtype=c.dtype)), 1)
    coef = torch.linalg.solve(system, rhs)  # (B, K+3, 2)
    ys, xs = torch.meshgrid(
        torch.linspace(-1, 1, h, dtype=c.dtype), torch.linspace(-1, 1, w, dtype=c.dtype), indexing="ij"
    )
    pts = torch.stack((xs, ys), -1).reshape(1, h * w, 2).expand(b, -1, -1)
    u = _tps_kernel(torch.cdist(pts, c).pow(2))  # (B, HW, K)
    basis = torch.cat((u, torch.ones(b, h * w, 1, dtype=c.dtype), pts), -1)
    return (basis @ coef).reshape(b, h, w, 2).float()


def random_tps_grid(
    b: int, h: int, w: int, g: torch.Generator | None = None, points: int = 4, strength: float = 0.1
) -> torch.Tensor:
    """A random smooth non-rigid warp: a ``points`` x ``points`` lattice jittered by N(0, strength)."""
    lin = torch.linspace(-1, 1, points, dtype=torch.float64)
    gy, gx = torch.meshgrid(lin, lin, indexing="ij")
    ctrl = torch.stack((gx, gy), -1).reshape(1, -1, 2).expand(b, -1, -1)
    target = ctrl + strength * torch.randn(b, points * points, 2, generator=g, dtype=torch.float64)
    return tps_grid(ctrl, target, h, w)


def random_affine(
    b: int,
    g: torch.Generator | None = None,
    rot_deg: float = 15.0,
    scale: tuple[float, float] = (0.7, 1.1),
    shift: float = 0.15,
    p_flip: float = 0.5,
) -> torch.Tensor:
    """Random affine matrices (B, 2, 3) mapping output to input coordinates ([-1, 1]).

    A scale below 1 samples a smaller window, i.e. a random crop resized to the full frame; the
    shift is bounded so the crop stays mostly inside the picture.
    """
    ang = _uniform(b, -rot_deg, rot_deg, g) * math.pi / 180.0
    s = _uniform(b, scale[0], scale[1], g)
    room = (1.0 - s).clamp(min=0.0) + shift
    tx = (2 * torch.rand(b, generator=g, dtype=torch.float64) - 1) * room
    ty = (2 * torch.rand(b, generator=g, dtype=torch.float64) - 1) * room
    flip = torch.where(torch.rand(b, generator=g, dtype=torch.float64) < p_flip, -1.0, 1.0).double()
    cos, sin = torch.cos(ang) * s, torch.sin(ang) * s
    theta = torch.stack(
        (torch.stack((cos * flip, -sin, tx), -1), torch.stack((sin * flip, cos, ty), -1)), 1
    )
    return theta.float()


def apply_affine_to_grid(grid: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Compose: output pixel -> ``grid`` -> ``theta``. grid (B, H, W, 2), theta (B, 2, 3)."""
    return grid @ theta[:, :, :2].transpose(1, 2)[:, None] + theta[:, None, None, :, 2]


def colour_noise(
    rgb: torch.Tensor, g: torch.Generator | None = None, sigma: float = 5 / 255, brightness: float = 0.08,
    contrast: float = 0.12,
) -> torch.Tensor:
    """Brightness/contrast change and Gaussian pixel noise; hue is left alone. (B, 3, H, W) in [0, 1]."""
    b = rgb.shape[0]
    shape = (b, 1, 1, 1)
    bright = _uniform(b, -brightness, brightness, g).view(shape).to(rgb)
    con = _uniform(b, 1 - contrast, 1 + contrast, g).view(shape).to(rgb)
    mean = rgb.mean(dim=(1, 2, 3), keepdim=True)
    out = (rgb - mean) * con + mean + bright
    out = out + sigma * torch.randn(rgb.shape, generator=g).to(rgb)
    return out.clamp(0.0, 1.0)


def augment_reference(
    rgb: torch.Tensor, g: torch.Generator | None = None, cfg: ReferenceAugConfig = ReferenceAugConfig(),
    strong: bool = True,
) -> torch.Tensor:
    """Warp (TPS with probability ``p_tps``, then affine: rotation, crop, shift, flip) and noise.

    ``strong=False`` gives the light version used for another frame of the clip: a small affine
    jitter and colour noise, no TPS and no flip.
    """
    if rgb.dim() != 4 or rgb.shape[1] != 3:
        raise ValueError(f"augment_reference expects (B, 3, H, W) RGB, got {tuple(rgb.shape)}")
    b, _, h, w = rgb.shape
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    grid = torch.stack((xs, ys), -1)[None].expand(b, -1, -1, -1)
    if strong:
        tps = random_tps_grid(b, h, w, g, cfg.tps_points, cfg.tps_strength)
        use = (torch.rand(b, generator=g) < cfg.p_tps).view(b, 1, 1, 1)
        grid = torch.where(use, tps, grid)
        theta = random_affine(b, g, cfg.rot_deg, cfg.scale, cfg.shift, cfg.p_flip)
    else:
        theta = random_affine(b, g, cfg.rot_deg / 4, (0.9, 1.05), cfg.shift / 3, 0.0)
    grid = apply_affine_to_grid(grid, theta).to(rgb)
    out = F.grid_sample(rgb, grid, mode="bilinear", padding_mode="reflection", align_corners=True)
    return colour_noise(out, g, cfg.noise_sigma, cfg.brightness, cfg.contrast)


def make_reference(
    clip_rgb: torch.Tensor,
    other_rgb: torch.Tensor,
    g: torch.Generator | None = None,
    cfg: ReferenceAugConfig = ReferenceAugConfig(),
) -> tuple[torch.Tensor, torch.Tensor]:
    """One reference per clip for a window ``clip_rgb`` (B, T, 3, H, W) and unrelated photos
    ``other_rgb`` (B, 3, H, W).

    Returns ``(ref_rgb (B, 3, H, W), kind (B,))`` with kind :data:`SELF_WARPED` (a random frame of
    the window, strongly augmented), :data:`CLIP_FRAME` (the first frame, lightly augmented: the
    keyframe an archivist coloured) or :data:`UNRELATED` (``other_rgb``, augmented).
    """
    if clip_rgb.dim() != 5 or clip_rgb.shape[2] != 3:
        raise ValueError(f"clip_rgb must be (B, T, 3, H, W), got {tuple(clip_rgb.shape)}")
    b, t = clip_rgb.shape[:2]
    if other_rgb.shape != (b, 3) + tuple(clip_rgb.shape[-2:]):
        raise ValueError(f"other_rgb must be (B, 3, H, W) like the clip, got {tuple(other_rgb.shape)}")
    u = torch.rand(b, generator=g)
    kind = torch.full((b,), SELF_WARPED, dtype=torch.long)
    kind[u < cfg.p_clip_frame + cfg.p_unrelated] = CLIP_FRAME
    kind[u < cfg.p_unrelated] = UNRELATED
    pick = torch.randint(0, t, (b,), generator=g).to(clip_rgb.device)
    kind_map = kind.to(clip_rgb.device).view(b, 1, 1, 1)
    self_src = clip_rgb[torch.arange(b, device=clip_rgb.device), pick]
    strong = augment_reference(torch.where(kind_map == UNRELATED, other_rgb, self_src), g, cfg)
    light = augment_reference(clip_rgb[:, 0], g, cfg, strong=False)
    ref = torch.where(kind_map == CLIP_FRAME, light, strong)
    return ref, kind
