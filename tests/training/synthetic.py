"""Small synthetic training inputs made on the fly (no data set needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from colorize.color.lab import rgb_to_lab
from colorize.training.family import TrainBatch


def smooth_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A colourful, smooth RGB uint8 image: a few coloured blobs on a gradient."""
    ys, xs = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.zeros((h, w, 3))
    img += rng.uniform(0, 1, 3) * (1 - ys[..., None]) + rng.uniform(0, 1, 3) * ys[..., None]
    for _ in range(3):
        cy, cx, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.1, 0.3)
        mask = ((ys - cy) ** 2 + (xs - cx) ** 2 < r * r)[..., None]
        img = np.where(mask, rng.uniform(0, 1, 3), img)
    return (img * 255).clip(0, 255).astype(np.uint8)


def synthetic_batch(b: int = 2, t: int = 3, size: int = 32, seed: int = 0) -> TrainBatch:
    rng = np.random.default_rng(seed)
    frames = np.stack([np.stack([smooth_image(rng, size, size)] * t) for _ in range(b)])
    rgb = torch.from_numpy(frames).permute(0, 1, 4, 2, 3).float() / 255
    lab = rgb_to_lab(rgb.flatten(0, 1)).view(b, t, 3, size, size)
    return TrainBatch(
        rgb=rgb, lab=lab, flow=torch.zeros(b, t - 1, 2, size, size), valid=torch.ones(b, t - 1, 1, size, size),
        other_rgb=rgb[:, 0].flip(0),
    )


def write_photo_folder(folder: Path, n: int = 6, size: int = 96, seed: int = 0) -> Path:
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        cv2.imwrite(str(folder / f"p{i}.png"), smooth_image(rng, size, size + 16)[..., ::-1])
    return folder


def photo_sampler(folder: Path, crop: int = 32, n: int = 2, window: int = 2, seed: int = 0):
    """A training sampler over ``n`` synthetic 80-px photos written to ``folder`` (no clips)."""
    from colorize.training.data import ClipSampler, DataConfig, load_photos

    photos = load_photos([write_photo_folder(folder, n=n, size=80)], short=80)
    return ClipSampler(photos, [], DataConfig(size=crop, window=window), seed=seed)
