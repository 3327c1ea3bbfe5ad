"""Training data: short clips from real video and from photos with synthetic camera motion.

Everything is decoded once into memory at training resolution (the shared data set is ~140 MB of
JPEG/H.264; at a short side of 160 px it is well under 2 GB of uint8; clips for 256-px crops are
held at 320 px, about 5 GB), then sampled with a numpy
``Generator`` seeded from ``(seed, step)`` so that a resumed run draws exactly the batches the
uninterrupted run would have drawn.

Splits are by file for photos and by *source video* for clips (all ``name_partN`` pieces of one
source land on the same side), as the data set's README asks.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from colorize.color.lab import rgb_to_lab
from colorize.training.family import TrainBatch

PHOTO_EXTS = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp"}
VIDEO_EXTS = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v"}


def _source_of(path: Path) -> str:
    return re.sub(r"_part\d+$", "", path.stem)


def _is_val(key: str, val_fraction: float) -> bool:
    return (zlib.crc32(key.encode()) % 1000) < val_fraction * 1000


def is_validation_clip(path: str | Path, val_fraction: float | None = None) -> bool:
    """True for a clip the trainer holds out for validation (``build_samplers``): the split is by
    source video (all ``_partN`` pieces of one source fall on the same side), deterministic, and
    the same for every run with this ``val_fraction`` (default: DataConfig's)."""
    frac = DataConfig.val_fraction if val_fraction is None else val_fraction
    return _is_val(_source_of(Path(path)), frac * 1.5)


def is_validation_photo(path: str | Path, cfg: "DataConfig | None" = None) -> bool:
    """True for a photo the trainer holds out for validation (``build_samplers``): split by file
    name, except that the photos of a ``whole_folders`` folder (frames of a few videos) share one
    side; deterministic, and the same for every run with this config (default: DataConfig's)."""
    cfg = cfg or DataConfig()
    p = Path(path)
    key = p.parent.name if p.parent.name in cfg.whole_folders else p.name
    return _is_val(key, cfg.val_fraction)


def _resize_short(img: np.ndarray, short: int) -> np.ndarray:
    h, w = img.shape[:2]
    s = short / min(h, w)
    if s >= 1.0:
        return img
    return cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def load_photos(dirs: list[Path], short: int) -> list[tuple[str, np.ndarray]]:
    out = []
    for d in dirs:
        for p in sorted(Path(d).rglob("*")):
            if p.suffix.lower() not in PHOTO_EXTS:
                continue
            bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if bgr is None or min(bgr.shape[:2]) < 64:
                continue
            out.append((str(p), _resize_short(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), short)))
    return out


def load_clips(dirs: list[Path], short: int, max_frames: int = 400) -> list[tuple[str, np.ndarray]]:
    import av

    out = []
    for d in dirs:
        for p in sorted(Path(d).rglob("*")):
            if p.suffix.lower() not in VIDEO_EXTS:
                continue
            frames = []
            with av.open(str(p)) as c:
                for f in c.decode(video=0):
                    frames.append(_resize_short(f.to_ndarray(format="rgb24"), short))
                    if len(frames) >= max_frames:
                        break
            if len(frames) >= 2:
                out.append((str(p), np.stack(frames)))
    return out


def dis_flow(prev_grey: np.ndarray, next_grey: np.ndarray) -> np.ndarray:
    """Backward flow for ``next``: where each of its pixels was in ``prev`` (H, W, 2) float32."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    return dis.calc(next_grey, prev_grey, None)


def flow_validity(flow: np.ndarray, back: np.ndarray | None = None, tol: float = 1.5) -> np.ndarray:
    """1 where the flow's target lies inside the frame and (if given) fwd-bwd agree."""
    h, w = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    tx, ty = xs + flow[..., 0], ys + flow[..., 1]
    ok = (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
    if back is not None:
        bx = cv2.remap(back[..., 0], tx, ty, cv2.INTER_LINEAR)
        by = cv2.remap(back[..., 1], tx, ty, cv2.INTER_LINEAR)
        ok &= (flow[..., 0] + bx) ** 2 + (flow[..., 1] + by) ** 2 < tol**2
    return ok.astype(np.float32)


@dataclass
class DataConfig:
    size: int = 128  # square training crops
    window: int = 4  # frames per sample
    clip_prob: float = 0.35  # share of samples from real clips (the rest: photos + synthetic motion)
    store_short: int = 160  # short side kept in memory for clips
    # Short side kept in memory for photos (0 = store_short). Photos are few and cheap to hold, so a
    # larger copy lets crops zoom in on details instead of always showing the whole, downscaled scene.
    photo_short: int = 0
    crop_min: float = 0.55  # photo crops cover crop_min..1 of the photo's short side
    val_fraction: float = 0.08
    # Photo folders that hold frames of a few videos (photos_extra's street and driving scenes):
    # correlated frames, so each such folder is kept whole in one split, as the data README asks.
    whole_folders: tuple[str, ...] = ("camvid", "street_pedestrians")


def clip_store_short(size: int) -> int:
    """Short side at which clips are held in memory for square training crops of ``size`` px.

    Clip crops cover 0.6..1 of the short side, so the copy is 1.25x the crop: crops are then
    mostly downsampled, as at the default 128 px crops and 160 px copies."""
    return max(DataConfig.store_short, (5 * size) // 4)


class ClipSampler:
    """Draws :class:`TrainBatch` es; deterministic given (seed, step)."""

    def __init__(self, photos, clips, cfg: DataConfig, seed: int = 0) -> None:
        if not photos and not clips:
            raise ValueError("no training images or clips found")
        self.photos = photos
        self.clips = [c for c in clips if len(c[1]) >= cfg.window]
        self.cfg = cfg
        self.seed = seed

    # -------------------------------------------------------------- samples
    def _photo_window(self, rng: np.random.Generator, img: np.ndarray):
        """A window of frames from one photo under slow random pan / zoom / rotation, exact flow."""
        s, t_len = self.cfg.size, self.cfg.window
        h, w = img.shape[:2]
        base = min(h, w)
        crop = rng.uniform(self.cfg.crop_min, 1.0) * base  # side of the photo region seen by frame 0
        scale0 = crop / s
        cx = rng.uniform(crop / 2, w - crop / 2) if w > crop else w / 2
        cy = rng.uniform(crop / 2, h - crop / 2) if h > crop else h / 2
        angle0 = rng.uniform(-0.08, 0.08)
        v = rng.normal(0, 0.025 * crop, size=2)  # pan per frame, in photo pixels
        dzoom = rng.normal(0, 0.02)
        drot = rng.normal(0, 0.01)
        flip = rng.random() < 0.5
        mats = []
        for t in range(t_len):
            sc = scale0 * (1 + dzoom) ** t
            a = angle0 + drot * t
            c, si = np.cos(a) * sc, np.sin(a) * sc
            ox, oy = cx + v[0] * t, cy + v[1] * t
            # output (u, v) -> photo (x, y), centred on (ox, oy)
            m = np.array([[c, -si, ox - c * s / 2 + si * s / 2], [si, c, oy - si * s / 2 - c * s / 2]])
            if flip:
                m = m @ np.array([[-1, 0, s - 1], [0, 1, 0], [0, 0, 1]], dtype=np.float64)
            mats.append(m)
        frames = [
            cv2.warpAffine(img, m, (s, s), flags=cv2.WARP_INVERSE_MAP | cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)
            for m in mats
        ]
        us, vs = np.meshgrid(np.arange(s, dtype=np.float64), np.arange(s, dtype=np.float64))
        ones = np.ones_like(us)
        grid = np.stack([us, vs, ones], -1)  # (s, s, 3)
        flows, valids = [], []
        for t in range(t_len - 1):
            a_prev = np.vstack([mats[t], [0, 0, 1]])
            a_next = np.vstack([mats[t + 1], [0, 0, 1]])
            rel = np.linalg.inv(a_prev) @ a_next  # frame t+1 coords -> frame t coords
            tgt = grid @ rel.T
            flow = (tgt[..., :2] - grid[..., :2]).astype(np.float32)
            flows.append(flow)
            valids.append(flow_validity(flow))
        return np.stack(frames), np.stack(flows), np.stack(valids)

    def _clip_window(self, rng: np.random.Generator, frames_all: np.ndarray):
        s, t_len = self.cfg.size, self.cfg.window
        n, h, w = frames_all.shape[:3]
        stride = int(rng.integers(1, 3)) if n >= 2 * t_len else 1
        start = int(rng.integers(0, n - (t_len - 1) * stride))
        idx = [start + i * stride for i in range(t_len)]
        crop = int(min(h, w) * rng.uniform(0.6, 1.0))
        y0 = int(rng.integers(0, h - crop + 1))
        x0 = int(rng.integers(0, w - crop + 1))
        frames = [cv2.resize(frames_all[i, y0 : y0 + crop, x0 : x0 + crop], (s, s), interpolation=cv2.INTER_AREA) for i in idx]
        if rng.random() < 0.5:
            frames = [f[:, ::-1].copy() for f in frames]
        greys = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
        flows, valids = [], []
        for t in range(t_len - 1):
            fb = dis_flow(greys[t], greys[t + 1])
            ff = dis_flow(greys[t + 1], greys[t])
            flows.append(fb)
            valids.append(flow_validity(fb, ff))
        return np.stack(frames), np.stack(flows), np.stack(valids)

    def batch(self, step: int, batch_size: int, device: torch.device = torch.device("cpu")) -> TrainBatch:
        rng = np.random.default_rng([self.seed, step])
        rgbs, flows, valids, others = [], [], [], []
        for _ in range(batch_size):
            if self.clips and (rng.random() < self.cfg.clip_prob or not self.photos):
                _, frames_all = self.clips[int(rng.integers(len(self.clips)))]
                f, fl, va = self._clip_window(rng, frames_all)
            else:
                _, img = self.photos[int(rng.integers(len(self.photos)))]
                f, fl, va = self._photo_window(rng, img)
            rgbs.append(f)
            flows.append(fl)
            valids.append(va)
            if self.photos:
                _, other = self.photos[int(rng.integers(len(self.photos)))]
                others.append(cv2.resize(other, (self.cfg.size, self.cfg.size), interpolation=cv2.INTER_AREA))
            else:
                others.append(f[0])
        rgb = torch.from_numpy(np.stack(rgbs)).permute(0, 1, 4, 2, 3).float().div_(255.0)
        b, t = rgb.shape[:2]
        lab = rgb_to_lab(rgb.flatten(0, 1)).view(b, t, 3, *rgb.shape[-2:])
        flow = torch.from_numpy(np.stack(flows)).permute(0, 1, 4, 2, 3)
        valid = torch.from_numpy(np.stack(valids))[:, :, None]
        other = torch.from_numpy(np.stack(others)).permute(0, 3, 1, 2).float().div_(255.0)
        return TrainBatch(
            rgb=rgb.to(device), lab=lab.to(device), flow=flow.to(device), valid=valid.to(device),
            other_rgb=other.to(device),
        )


def build_samplers(dirs: list[Path], cfg: DataConfig, seed: int = 0) -> tuple[ClipSampler, ClipSampler]:
    """Train and validation samplers from folders of photos and clips (split by file / source)."""
    if not 0.0 < cfg.crop_min <= 1.0:
        raise ValueError(f"crop_min must be in (0, 1], got {cfg.crop_min}")
    photos = load_photos(dirs, cfg.photo_short or cfg.store_short)
    clips = load_clips(dirs, cfg.store_short)
    tr_p = [x for x in photos if not is_validation_photo(x[0], cfg)]
    va_p = [x for x in photos if is_validation_photo(x[0], cfg)]
    tr_c = [x for x in clips if not is_validation_clip(x[0], cfg.val_fraction)]
    va_c = [x for x in clips if is_validation_clip(x[0], cfg.val_fraction)]
    train = ClipSampler(tr_p, tr_c, cfg, seed)
    val = ClipSampler(va_p or tr_p[:8], va_c, cfg, seed + 1_000_003)
    return train, val
