"""Colour test clips made with PyAV, and fake StreamColorizers, for the evaluation tests."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F

from colorize.color.lab import rgb_to_lab
from colorize.models.base import ModelInfo, StreamColorizer


def colour_frame(index: int, width: int, height: int) -> np.ndarray:
    """(H, W, 3) uint8: a smooth colour gradient and a red square moving 2 px per frame."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 60 + 120 * x / width
    g = 90 + 100 * y / height
    b = 170 - 80 * x / width
    img = np.stack([r, g, b], -1)
    s = max(6, min(width, height) // 4)
    x0, y0 = 4 + 2 * index, height // 3
    img[y0 : y0 + s, x0 : x0 + s] = (200, 40, 30)
    return np.clip(img, 0, 255).round().astype(np.uint8)


def write_clip(path: Path, frames: int = 6, width: int = 64, height: int = 48) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "12"}
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(colour_frame(i, width, height), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def decode_lab(path: Path) -> list[torch.Tensor]:
    """Every frame of ``path`` as Lab (1, 3, H, W), decoded independently of the runner."""
    labs = []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            rgb = torch.from_numpy(f.to_ndarray(format="rgb24")).permute(2, 0, 1)[None].float() / 255
            labs.append(rgb_to_lab(rgb))
    return labs


class FakeColorizer(StreamColorizer):
    """Test double: returns a fixed ab per frame index (the truth, or zeros), ``delay`` frames late."""

    def __init__(self, truth: list[torch.Tensor] | None = None, delay: int = 0, render: int = 48,
                 multiple: int = 16, needs_reference: bool = False) -> None:
        self.info = ModelInfo(name="fake", summary="test double", paper="-", needs_reference=needs_reference,
                              size_multiple=multiple, default_render_size=render)
        self.device = torch.device("cpu")
        self.truth = truth
        self.delay = delay
        self.held: list[tuple[int, torch.Tensor]] = []
        self.references: list[torch.Tensor] = []
        self.pushed_shapes: list[tuple[int, ...]] = []
        self.resets = 0
        self.scale = 1.0  # multiplies the returned chroma

    def _ab(self, index: int, l: torch.Tensor) -> torch.Tensor:
        if self.truth is None:
            return torch.zeros(1, 2, *l.shape[-2:])
        ab = self.truth[index][:, 1:]
        return self.scale * F.interpolate(ab, size=l.shape[-2:], mode="area")

    def push(self, index, l):
        assert l.dim() == 3 and l.shape[0] == 1 and 0 <= float(l.min()) and float(l.max()) <= 100
        assert l.shape[-1] % self.info.size_multiple == 0 and l.shape[-2] % self.info.size_multiple == 0
        self.pushed_shapes.append(tuple(l.shape))
        self.held.append((index, self._ab(index, l)))
        ready, self.held = self.held[: max(0, len(self.held) - self.delay)], self.held[max(0, len(self.held) - self.delay):]
        return ready

    def flush(self):
        ready, self.held = self.held, []
        return ready

    def reset(self):
        self.held = []
        self.resets += 1

    def set_reference(self, ref_lab):
        if not self.info.needs_reference:
            return super().set_reference(ref_lab)
        self.references.append(ref_lab.clone())
