"""Synthetic test films for the benchmarks: grey H.264 video with neutral chroma and a 440 Hz tone.

    from film import write_grey_film      # the benchmarks run as scripts from this folder

One writer for every benchmark that needs an input film, so they differ only in the pictures.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Iterable

import av
import numpy as np


def write_grey_film(path: Path, lumas: Iterable[np.ndarray], frames: int, width: int, height: int, fps: int,
                    options: dict, layout: str = "mono", rate: int = 48000, fmt: str | None = None) -> Path:
    """Write ``frames`` frames of luma (H, W) uint8 from ``lumas`` as yuv420p H.264 (x264
    ``options``, e.g. crf and preset) with U = V = 128, and an AAC 440 Hz tone (``layout`` mono or
    stereo) as long as the video."""
    channels = 2 if layout == "stereo" else 1
    with av.open(str(path), "w", format=fmt) as out:
        v = out.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        v.options = dict(options)
        a = out.add_stream("aac", rate=rate, layout=layout)
        for i, y8 in zip(range(frames), lumas):
            f = av.VideoFrame(width, height, "yuv420p")
            for k, plane in enumerate(f.planes):
                view = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
                view[:, : plane.width] = y8 if k == 0 else 128
            f.pts, f.time_base = i, Fraction(1, fps)
            for p in v.encode(f):
                out.mux(p)
        n = frames * rate // fps
        tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(n) / rate)).astype(np.float32)
        for s in range(0, n, 1024):
            chunk = np.repeat(tone[None, s:s + 1024], channels, axis=0)
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout=layout)
            af.sample_rate, af.pts, af.time_base = rate, s, Fraction(1, rate)
            for p in a.encode(af):
                out.mux(p)
        for p in list(v.encode()) + list(a.encode()):
            out.mux(p)
    return path
