"""Make the example inputs: a 3-second black-and-white clip with sound, and a colour still.

Everything is synthetic (numpy + PyAV only; no third-party footage), so it can be shared freely:

* ``clip.mp4``  320x240, 25 fps, 75 frames, H.264, black and white, with a sine-tone AAC track.
  Two shots: a landscape (blue sky, drifting clouds, a moving sun, green hills with parallax, a red
  barn) for 2 s, then a cut to a beach (sea, sand, sky) for 1 s: enough to see scene-cut handling
  and per-shot references.
* ``still.jpg`` a colour frame of the first shot (the reference an archivist would colour by hand).

Run: ``python examples/make_examples.py`` (writes next to this file). Deterministic.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

W, H, FPS, SECONDS = 320, 240, 25, 3
CUT = 50  # first frame of the second shot
SAMPLE_RATE = 48000


def _lerp(a, b, t):
    return a + (b - a) * t


def _landscape(i: int, rng: np.random.Generator) -> np.ndarray:
    """Frame ``i`` of shot 1, float RGB in [0, 1], H x W x 3."""
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    t = i / FPS
    sky_top, sky_low = np.array([0.22, 0.45, 0.85]), np.array([0.70, 0.85, 0.98])
    img = _lerp(sky_top, sky_low, (y / (H * 0.6))[..., None].clip(0, 1))
    # Sun moving slowly to the right and up.
    sx, sy = 60 + 30 * t, 70 - 8 * t
    d = np.hypot(x - sx, y - sy)
    glow = np.exp(-((d / 40.0) ** 2))[..., None]
    img = _lerp(img, np.array([1.0, 0.95, 0.75]), 0.5 * glow)
    img = np.where((d < 14)[..., None], np.array([1.0, 0.93, 0.55]), img)
    # Clouds: soft white blobs drifting left.
    for cx, cy, r in ((250, 45, 26), (150, 30, 18), (330, 70, 22)):
        cxx = (cx - 20 * t) % (W + 60) - 30
        c = np.exp(-(((x - cxx) / (1.8 * r)) ** 2 + ((y - cy) / r) ** 2))[..., None]
        img = _lerp(img, np.array([0.97, 0.97, 0.98]), 0.85 * c.clip(0, 1))
    # Far hills (blue-green) and near hills (grass green), with parallax.
    far = 150 + 14 * np.sin((x + 8 * t * FPS / 10) / 37.0) + 8 * np.sin((x + 5 * t) / 13.0)
    img = np.where((y > far)[..., None], np.array([0.30, 0.52, 0.40]), img)
    near = 180 + 18 * np.sin((x + 30 * t) / 55.0 + 1.0) + 5 * np.sin((x + 30 * t) / 9.0)
    grass = np.array([0.28, 0.60, 0.18]) * (0.93 + 0.07 * np.sin(y / 2.0) * np.sin(x / 3.0))[..., None]
    img = np.where((y > near)[..., None], grass, img)
    # A red barn with a dark roof on the near hill, moving with it.
    bx = int(200 - 30 * t)
    by = 170
    barn = (x >= bx) & (x < bx + 44) & (y >= by) & (y < by + 30)
    roof = (y >= by - 14) & (y < by) & (np.abs(x - (bx + 22)) < (y - (by - 14)) * 1.7)
    img = np.where(barn[..., None], np.array([0.70, 0.12, 0.10]), img)
    img = np.where(roof[..., None], np.array([0.25, 0.20, 0.18]), img)
    door = (x >= bx + 17) & (x < bx + 27) & (y >= by + 12) & (y < by + 30)
    img = np.where(door[..., None], np.array([0.95, 0.92, 0.85]), img)
    return img.clip(0, 1)


def _beach(i: int, rng: np.random.Generator) -> np.ndarray:
    """Frame ``i`` of shot 2: sky, sea with moving waves, sand."""
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    t = i / FPS
    img = _lerp(np.array([0.35, 0.60, 0.92]), np.array([0.80, 0.90, 0.98]), (y / 100.0)[..., None].clip(0, 1))
    sea_top = 100
    waves = 0.03 * np.sin(x / 17.0 - 6 * t) * np.sin(y / 2.5)
    sea = _lerp(np.array([0.05, 0.35, 0.55]), np.array([0.10, 0.55, 0.65]), ((y - sea_top) / 80.0)[..., None].clip(0, 1))
    img = np.where((y >= sea_top)[..., None], sea + waves[..., None], img)
    shore = 175 + 6 * np.sin(x / 25.0 + 2 * t)
    img = np.where((y > shore)[..., None] & (y <= shore + 4)[..., None], np.array([0.95, 0.97, 0.98]), img)
    sand = np.array([0.86, 0.76, 0.55]) * (0.95 + 0.05 * np.sin(x * 1.3) * np.sin(y * 0.7))[..., None]
    img = np.where((y > shore + 4)[..., None], sand, img)
    return img.clip(0, 1)


def _luma(rgb: np.ndarray) -> np.ndarray:
    """Rec.601 luma of sRGB, the way a black-and-white print of this scene would look."""
    return rgb @ np.array([0.299, 0.587, 0.114])


def _grain(rng: np.random.Generator) -> np.ndarray:
    return rng.normal(0.0, 0.012, size=(H, W))


def frame_rgb(i: int, rng: np.random.Generator) -> np.ndarray:
    return _landscape(i, rng) if i < CUT else _beach(i - CUT, rng)


def make_clip(path: Path) -> None:
    rng = np.random.default_rng(1895)
    n = FPS * SECONDS
    with av.open(str(path), "w", format="mp4") as out:
        out.metadata["title"] = "colorize example: a synthetic landscape"
        v = out.add_stream("libx264", rate=FPS)
        v.width, v.height, v.pix_fmt = W, H, "yuv420p"
        v.options = {"crf": "20", "preset": "slow", "tune": "grain"}
        v.codec_context.color_range = 1  # MPEG (limited) range, tagged
        a = out.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
        a.bit_rate = 48000
        samples = SECONDS * SAMPLE_RATE
        tt = np.arange(samples) / SAMPLE_RATE
        # A soft two-tone chime that changes at the cut.
        freq = np.where(tt < CUT / FPS, 440.0, 330.0)
        tone = (0.2 * np.sin(2 * math.pi * freq * tt) * (0.6 + 0.4 * np.sin(2 * math.pi * 0.5 * tt))).astype(np.float32)
        for i in range(n):
            grey = (_luma(frame_rgb(i, rng)) + _grain(rng)).clip(0, 1)
            y8 = (16 + grey * 219).round().astype(np.uint8)
            frame = av.VideoFrame(W, H, "yuv420p")
            for k, plane in enumerate(frame.planes):
                view = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
                view[:, : plane.width] = y8 if k == 0 else 128
            frame.pts = i
            frame.time_base = Fraction(1, FPS)
            frame.color_range = 1
            for pkt in v.encode(frame):
                out.mux(pkt)
        chunk = 1024
        for s in range(0, samples, chunk):
            block = tone[s:s + chunk]
            af = av.AudioFrame.from_ndarray(block[None, :], format="fltp", layout="mono")
            af.sample_rate = SAMPLE_RATE
            af.pts = s
            af.time_base = Fraction(1, SAMPLE_RATE)
            for pkt in a.encode(af):
                out.mux(pkt)
        for pkt in v.encode():
            out.mux(pkt)
        for pkt in a.encode():
            out.mux(pkt)


def make_still(path: Path, index: int = 20) -> None:
    rgb = (frame_rgb(index, np.random.default_rng(7)) * 255).round().astype(np.uint8)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    with av.open(str(path), "w", format="image2") as out:
        s = out.add_stream("mjpeg", rate=1)
        s.width, s.height, s.pix_fmt = W, H, "yuvj444p"
        s.options = {"qmin": "2", "qmax": "4"}
        for pkt in s.encode(frame.reformat(format="yuvj444p")):
            out.mux(pkt)
        for pkt in s.encode():
            out.mux(pkt)


def main() -> None:
    here = Path(__file__).resolve().parent
    make_clip(here / "clip.mp4")
    make_still(here / "still.jpg")
    for name in ("clip.mp4", "still.jpg"):
        print(f"{here / name}: {(here / name).stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
