"""Test doubles for the pipeline and CLI tests: small clips made with PyAV, and fake models.

The fake models implement :class:`~colorize.models.base.StreamColorizer` with trivially
predictable colours, so a test can check what reached the output file. They are registered in the
real registry only for the duration of a test (see ``register_fake`` in conftest).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from colorize.models.base import ModelInfo, StreamColorizer

FAKE_AB = (30.0, 40.0)  # an orange: the fixed colour of the automatic fake


def grey_frame(index: int, width: int, height: int, shot: int = 0) -> np.ndarray:
    """A grey picture (H, W) uint8 in 16..235: each shot its own lightness layout, a moving bar."""
    y, x = np.mgrid[0:height, 0:width]
    if shot % 2 == 0:
        img = 60 + 100 * x / max(1, width - 1)  # dark-to-mid gradient
    else:
        img = 200 - 30 * (y / max(1, height - 1))  # bright
    x0 = (3 * index) % max(1, width - 8)
    img = np.where((x >= x0) & (x < x0 + 8), img + 25, img)
    return np.clip(img, 16, 235).astype(np.uint8)


def grey_yuv_frame(y8: np.ndarray, pts: int, time_base: Fraction) -> av.VideoFrame:
    """A yuv420p frame with luma ``y8`` (H, W) uint8 and neutral chroma (U = V = 128)."""
    f = av.VideoFrame(y8.shape[1], y8.shape[0], "yuv420p")
    for k, plane in enumerate(f.planes):
        view = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
        view[:, : plane.width] = y8 if k == 0 else 128
    f.pts, f.time_base = pts, time_base
    return f


def make_clip(path: Path, frames: int = 8, width: int = 64, height: int = 48, fps: int = 25,
              cut_at: int | None = None, audio: bool = True, codec: str = "libx264") -> Path:
    """A black-and-white clip (yuv420p, neutral chroma) with an optional sine audio track."""
    fmt = {".mkv": "matroska", ".mov": "mov"}.get(path.suffix, None)
    with av.open(str(path), "w", format=fmt) as out:
        v = out.add_stream(codec, rate=fps)
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            v.options = {"crf": "10", "preset": "ultrafast"}
        a = None
        if audio:
            a = out.add_stream("aac", rate=8000, layout="mono")
        for i in range(frames):
            shot = 0 if cut_at is None or i < cut_at else 1
            f = grey_yuv_frame(grey_frame(i, width, height, shot), i, Fraction(1, fps))
            for p in v.encode(f):
                out.mux(p)
        if a is not None:
            n = int(8000 * frames / fps)
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / 8000)).astype(np.float32)
            for s in range(0, n, 1024):
                af = av.AudioFrame.from_ndarray(tone[None, s:s + 1024], format="fltp", layout="mono")
                af.sample_rate = 8000
                af.pts = s
                af.time_base = Fraction(1, 8000)
                for p in a.encode(af):
                    out.mux(p)
            for p in a.encode():
                out.mux(p)
        for p in v.encode():
            out.mux(p)
    return path


def make_still(path: Path, rgb: tuple[int, int, int] = (200, 60, 40), size=(40, 56), lightness=None) -> Path:
    """A flat colour still (PNG or JPEG by suffix)."""
    import cv2

    h, w = size
    img = np.empty((h, w, 3), np.uint8)
    img[:] = rgb
    if not cv2.imwrite(str(path), img[..., ::-1]):
        raise RuntimeError(f"cannot write {path}")
    return path


def decode_rgb(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def decode_planes(path: Path) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    out = []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            planes = []
            for plane in f.planes:
                arr = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]
                planes.append(arr.copy())
            out.append(tuple(planes))
    return out


class FakeColorizer(StreamColorizer):
    """Colours every pixel with a fixed ab (per candidate), ``delay`` frames late.

    Records what the runner does: pushed indices and shapes, resets, references set.
    ``interrupt_at``: raise KeyboardInterrupt when that frame is pushed (Ctrl-C simulation).
    ``fail_at``: raise RuntimeError there. With references, the ab is the reference's mean ab.
    """

    def __init__(self, info: ModelInfo, device, outputs: int = 1, delay: int = 0,
                 interrupt_at: int | None = None, fail_at: int | None = None,
                 sigterm_at: int | None = None) -> None:
        self.info = info
        self.device = torch.device(device)
        self.num_outputs = outputs
        self.delay = delay
        self.interrupt_at = interrupt_at
        self.fail_at = fail_at
        self.sigterm_at = sigterm_at
        self.weights_sha256 = "f" * 64
        self.held: list[tuple[int, torch.Tensor]] = []
        self.pushed: list[int] = []
        self.shapes: list[tuple[int, ...]] = []
        self.resets_at: list[int] = []
        self.references: list[torch.Tensor] = []
        self.ab = torch.tensor(FAKE_AB)

    def _candidates(self, l: torch.Tensor) -> torch.Tensor:
        h, w = l.shape[-2:]
        # Candidate i is (i + 1) / D times as saturated as the last one: the last is the most saturated.
        scales = torch.arange(1, self.num_outputs + 1, dtype=torch.float32) / self.num_outputs
        ab = scales.view(-1, 1) * self.ab.view(1, 2)
        return ab.view(-1, 2, 1, 1).expand(-1, -1, h, w).clone()

    def push(self, index, l):
        if index == self.interrupt_at:
            raise KeyboardInterrupt
        if index == self.fail_at:
            raise RuntimeError("fake model failure")
        if index == self.sigterm_at:
            import os
            import signal

            os.kill(os.getpid(), signal.SIGTERM)
        assert l.dim() == 3 and l.shape[0] == 1 and l.dtype == torch.float32
        assert float(l.min()) >= 0.0 and float(l.max()) <= 100.0
        assert l.shape[-1] % self.size_multiple == 0 and l.shape[-2] % self.size_multiple == 0
        self.pushed.append(index)
        self.shapes.append(tuple(l.shape))
        self.held.append((index, self._candidates(l)))
        cut = max(0, len(self.held) - self.delay)
        ready, self.held = self.held[:cut], self.held[cut:]
        return ready

    def flush(self):
        ready, self.held = self.held, []
        return ready

    def reset(self):
        assert not self.held, "reset() before flush()"
        self.resets_at.append(len(self.pushed))

    def set_reference(self, ref_lab):
        if not self.info.needs_reference:
            return super().set_reference(ref_lab)
        assert ref_lab.dim() == 4 and ref_lab.shape[:2] == (1, 3)
        self.references.append(ref_lab.clone())
        self.ab = ref_lab[0, 1:].mean(dim=(-2, -1)).float().cpu()

    def reference_score(self, l, ref_lab):
        if not self.info.needs_reference:
            return super().reference_score(l, ref_lab)
        return -abs(float(l.mean()) - float(ref_lab[0, 0].mean()))
