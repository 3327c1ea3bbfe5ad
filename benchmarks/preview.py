"""Preview speed: ``colorize FILM --preview 12`` against a full run of the same film.

Makes (once, cached in ``--dir``) a 3-minute black-and-white test film, 854x480, 24 fps, H.264
with x264's default GOP (a keyframe every 250 frames at most, so a seek lands up to ~10 s before
its target) and an AAC track: slow synthetic camera moves over public-domain/CC0 photographs
from scikit-image, with a hard cut every 6 s. Then times, each in a fresh ``colorize`` process
(model build and imports included, as a user would see them):

* ``colorize film.mp4 --preview N``       (the sheet is written beside the film)
* ``colorize film.mp4 -o full.mp4``       (only with ``--full``: it takes minutes)

Usage::

    python benchmarks/preview.py --dir /tmp/previewbench                 # preview only
    python benchmarks/preview.py --dir /tmp/previewbench --full --json   # both, and the ratio
    python benchmarks/preview.py --dir /tmp/previewbench --ref examples/still.jpg

Numbers depend on the machine and on what else runs on it; the script prints its settings.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from film import write_grey_film  # benchmarks/film.py, beside this script

W, H, FPS = 854, 480, 24
SHOT_S = 6
SAMPLE_RATE = 48000
PHOTOS = ("coffee", "astronaut", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry")


def _photos() -> list[np.ndarray]:
    from skimage import data

    out = []
    for name in PHOTOS:
        img = getattr(data, name)()
        grey = (img[..., :3].astype(np.float32) / 255) @ np.array([0.2126, 0.7152, 0.0722], np.float32)
        out.append(grey)
    return out


def _view(img: np.ndarray, t: float, shot: int) -> np.ndarray:
    """A W x H view of ``img``: a slow push-in and drift, direction varying by shot."""
    h, w = img.shape
    zoom = 1.0 + 0.25 * t
    scale = max(W / w, H / h) * zoom
    dx = (0.5 + 0.1 * math.sin(shot) * (t - 0.5)) * w
    dy = (0.5 + 0.1 * math.cos(shot) * (t - 0.5)) * h
    m = np.array([[scale, 0, W / 2 - scale * dx], [0, scale, H / 2 - scale * dy]], np.float32)
    return cv2.warpAffine(img, m, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def make_film(path: Path, seconds: int = 180) -> Path:
    photos = _photos()
    rng = np.random.default_rng(1895)
    n = seconds * FPS
    per_shot = SHOT_S * FPS
    tmp = path.with_name(".tmp-" + path.name)

    def lumas():
        for i in range(n):
            shot, k = divmod(i, per_shot)
            grey = _view(photos[shot % len(photos)], k / (per_shot - 1), shot)
            grey = (grey + rng.normal(0.0, 0.006, size=(H, W))).clip(0, 1)
            yield (16 + grey * 219).round().astype(np.uint8)

    write_grey_film(tmp, lumas(), n, W, H, FPS, {"crf": "20", "preset": "veryfast"}, rate=SAMPLE_RATE, fmt="mp4")
    tmp.replace(path)
    return path


def _timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr}")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=Path("/tmp/colorize-previewbench"))
    ap.add_argument("--seconds", type=int, default=180)
    ap.add_argument("--count", type=int, default=12, help="--preview N")
    ap.add_argument("--model", default=None)
    ap.add_argument("--ref", action="append", default=[])
    ap.add_argument("--repeat", type=int, default=2, help="preview runs (the best is reported)")
    ap.add_argument("--full", action="store_true", help="also time a full run (minutes)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    args.dir.mkdir(parents=True, exist_ok=True)
    film = args.dir / f"film{args.seconds}s.mp4"
    if not film.exists():
        t0 = time.perf_counter()
        make_film(film, args.seconds)
        print(f"made {film} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    exe = [shutil.which("colorize") or "colorize"]
    opts = (["--model", args.model] if args.model else []) + [x for r in args.ref for x in ("--ref", r)]
    previews = [_timed(exe + [str(film), "--preview", str(args.count), "--quiet"] + opts)
                for _ in range(max(1, args.repeat))]
    result = {"film": str(film), "seconds_of_film": args.seconds, "frames": args.seconds * FPS,
              "size": f"{W}x{H}", "model": args.model or "default", "refs": args.ref,
              "preview_count": args.count, "preview_s": [round(s, 2) for s in previews]}
    if args.full:
        full = _timed(exe + [str(film), "-o", str(args.dir / "full.mp4"), "--overwrite", "--quiet"] + opts)
        result["full_s"] = round(full, 1)
        result["full_fps"] = round(args.seconds * FPS / full, 2)
        result["preview_over_full"] = round(min(previews) / full, 4)
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
