"""Make the example inputs from real photographs that are public domain or CC0.

The photographs ship with scikit-image (``skimage.data``); their licences are quoted from its
docstrings in ``examples/README.md``. Only the ones stated public domain or CC0 are used:

* ``coffee``    -- a cup of coffee on a wooden table; CC0, Rachel Michetti (Pikolo Espresso Bar).
* ``astronaut`` -- Eileen Collins, NASA; public domain.
* ``chelsea``   -- Chelsea the cat; CC0, Stefan van der Walt.

Outputs (written next to this file):

* ``clip.mp4``  480x320, 24 fps, 84 frames (3.5 s), H.264 black and white (Rec.709 luma, limited
  range, a little film grain) with a sine-tone AAC track. Shot 1 (2 s): a slow push-in on the
  coffee. Hard cut. Shot 2 (1.5 s): a slow push-in on the astronaut portrait. The camera moves are
  synthetic (sub-pixel crops of the still photo, always downscaled, so they stay sharp); the cut
  exercises scene-cut handling and per-shot references.
* ``still.jpg`` the first frame of shot 1 in colour: the reference for ``--ref`` demos.
* ``photo.jpg`` the cat, greyscale: the stills demo.

Run: ``python examples/make_examples.py`` (needs scikit-image, from the ``[test]`` extra).
Deterministic. A development tool: nothing in the package imports it.
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import av
import cv2
import numpy as np
from skimage import data
from skimage.transform import AffineTransform, warp

W, H, FPS = 480, 320, 24
SHOT1, SHOT2 = 48, 36  # frames: 2 s, then 1.5 s after the cut
FRAMES = SHOT1 + SHOT2
SAMPLE_RATE = 48000
REC709 = np.array([0.2126, 0.7152, 0.0722])


def _smooth(t: float) -> float:
    """Ease in and out, like a camera operator's hands."""
    return t * t * (3 - 2 * t)


def _crop(img: np.ndarray, cx: float, cy: float, width: float) -> np.ndarray:
    """The W x H view of ``img`` (float RGB) centred on (cx, cy), ``width`` source pixels wide."""
    s = width / W
    tf = AffineTransform(scale=(s, s), translation=(cx - s * W / 2, cy - s * H / 2))
    return warp(img, tf, output_shape=(H, W), order=3, mode="edge")


@lru_cache(maxsize=None)
def _photo(name: str) -> np.ndarray:
    return getattr(data, name)().astype(np.float32) / 255


def shot1(i: int) -> np.ndarray:
    """Push-in on the coffee cup: the whole 600x400 photo down to a 76% crop, drifting a little."""
    img = _photo("coffee")
    t = _smooth(i / (SHOT1 - 1))
    width = 600 - 144 * t
    return _crop(img, 300 + 18 * t, 200 - 6 * t, width)


def shot2(i: int) -> np.ndarray:
    """Slow push-in on the 512x512 astronaut portrait, from head and shoulders to the face."""
    img = _photo("astronaut")
    t = _smooth(i / (SHOT2 - 1))
    return _crop(img, 256 - 24 * t, 190 - 34 * t, 510 - 110 * t)


def frame_rgb(i: int) -> np.ndarray:
    return shot1(i) if i < SHOT1 else shot2(i - SHOT1)


def _luma(rgb: np.ndarray) -> np.ndarray:
    """Rec.709 luma of the sRGB photo: what a panchromatic black-and-white print would hold."""
    return rgb @ REC709


def make_clip(path: Path) -> None:
    rng = np.random.default_rng(1895)
    n = FRAMES
    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as out:
        out.metadata["title"] = "colorize example: public-domain photographs (coffee, astronaut)"
        v = out.add_stream("libx264", rate=FPS)
        v.width, v.height, v.pix_fmt = W, H, "yuv420p"
        v.options = {"crf": "20", "preset": "slow", "tune": "film", "g": str(FPS * 2)}
        cc = v.codec_context
        cc.color_range, cc.colorspace, cc.color_primaries, cc.color_trc = 1, 1, 1, 1  # BT.709, limited
        a = out.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
        a.bit_rate = 48000
        samples = n * SAMPLE_RATE // FPS
        tt = np.arange(samples) / SAMPLE_RATE
        freq = np.where(tt < SHOT1 / FPS, 440.0, 330.0)  # the tone changes at the cut
        tone = (0.2 * np.sin(2 * math.pi * freq * tt) * (0.6 + 0.4 * np.sin(2 * math.pi * 0.5 * tt))).astype(np.float32)
        for i in range(n):
            grey = (_luma(frame_rgb(i)) + rng.normal(0.0, 0.006, size=(H, W))).clip(0, 1)
            y8 = (16 + grey * 219).round().astype(np.uint8)
            frame = av.VideoFrame(W, H, "yuv420p")
            for k, plane in enumerate(frame.planes):
                view = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
                view[:, : plane.width] = y8 if k == 0 else 128
            frame.pts = i
            frame.time_base = Fraction(1, FPS)
            frame.color_range, frame.colorspace = 1, 1
            for pkt in v.encode(frame):
                out.mux(pkt)
        chunk = 1024
        for s in range(0, samples, chunk):
            af = av.AudioFrame.from_ndarray(tone[None, s:s + chunk], format="fltp", layout="mono")
            af.sample_rate = SAMPLE_RATE
            af.pts = s
            af.time_base = Fraction(1, SAMPLE_RATE)
            for pkt in a.encode(af):
                out.mux(pkt)
        for pkt in v.encode():
            out.mux(pkt)
        for pkt in a.encode():
            out.mux(pkt)


def _save_jpeg(path: Path, img8: np.ndarray) -> None:
    """RGB (H x W x 3) or grey (H x W, a true one-channel JPEG) uint8."""
    if img8.ndim == 3:
        img8 = cv2.cvtColor(img8, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", img8, [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise RuntimeError(f"cannot encode {path}")
    path.write_bytes(buf.tobytes())


def make_still(path: Path, index: int = 0) -> None:
    """The clip's frame ``index`` in colour (a hand-coloured reference frame, in effect)."""
    _save_jpeg(path, (frame_rgb(index) * 255).round().astype(np.uint8))


def make_photo(path: Path) -> None:
    """Chelsea the cat in black and white, at the photo's own 451x300."""
    grey = _luma(data.chelsea().astype(np.float32) / 255)
    _save_jpeg(path, (grey * 255).round().astype(np.uint8))


def main() -> None:
    here = Path(__file__).resolve().parent
    make_clip(here / "clip.mp4")
    make_still(here / "still.jpg")
    make_photo(here / "photo.jpg")
    for name in ("clip.mp4", "still.jpg", "photo.jpg"):
        print(f"{here / name}: {(here / name).stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
