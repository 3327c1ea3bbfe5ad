"""Are blacks kept neutral? Colourize a film with each model and measure its black areas.

For every frame, the chroma samples (4:2:0) whose four luma pixels are all pure black in the
input (Y' at or below the range's black, e.g. the pillarbox bars of a film) are checked in the
output: the share whose U and V are exactly 128, and the largest deviation; the same for the
samples at least one codec block inside the black area (a lossy codec rings a little across the
edge of the picture). The dark cast (mean
chroma |ab| of the output's pixels with L < 10, and the input's) is printed next to it.

    python benchmarks/neutral_blacks.py FILM [--ref STILL] [--models selfreg lstm exemplar]
        [--frames N] [--codec NAME]

e.g. on the legacy excerpt: python benchmarks/neutral_blacks.py ../shared/data/legacy/v32.mp4
--ref ../shared/data/legacy/v32_ref_01.jpg. Prints one line per model.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import av
import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from colorize.color.lab import rgb_to_lab  # noqa: E402
from colorize.evaluation.metrics import dark_cast_sum  # noqa: E402


def _planes(path: Path, frames: int | None):
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if frames is not None and i >= frames:
                return
            planes = [np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width].copy() for p in f.planes]
            yield planes, f.to_ndarray(format="rgb24")


def measure(film: Path, out: Path, frames: int | None, black: int = 16) -> dict:
    total = exact = 0
    worst = 0
    inner_total = inner_exact = inner_worst = 0
    dark = dark_in = 0.0
    n_dark = 0
    for (pin, _), (pout, rgb_out) in zip(_planes(film, frames), _planes(out, frames)):
        y = pin[0][: pin[1].shape[0] * 2, : pin[1].shape[1] * 2]
        blk = (y <= black).reshape(y.shape[0] // 2, 2, y.shape[1] // 2, 2).all(axis=(1, 3))
        u, v = pout[1][blk].astype(int), pout[2][blk].astype(int)
        total += int(blk.sum())
        exact += int(((u == 128) & (v == 128)).sum())
        if blk.any():
            worst = max(worst, int(np.abs(u - 128).max()), int(np.abs(v - 128).max()))
        # Inside the black area: samples at least 8 chroma samples (one codec block) from any
        # non-black one, where a lossy codec's ringing at the picture's edge cannot reach.
        inner = cv2.erode(blk.astype(np.uint8), np.ones((17, 17), np.uint8), borderType=cv2.BORDER_REPLICATE) > 0
        if inner.any():
            ui, vi = pout[1][inner].astype(int), pout[2][inner].astype(int)
            inner_total += int(inner.sum())
            inner_exact += int(((ui == 128) & (vi == 128)).sum())
            inner_worst = max(inner_worst, int(np.abs(ui - 128).max()), int(np.abs(vi - 128).max()))
        lab = rgb_to_lab(torch.from_numpy(rgb_out).permute(2, 0, 1)[None].float() / 255)
        s, n = dark_cast_sum(lab[:, :1], lab[:, 1:])
        dark += s
        n_dark += n
        lab_in = rgb_to_lab(torch.from_numpy(_rgb(pin)).permute(2, 0, 1)[None].float() / 255)
        dark_in += dark_cast_sum(lab_in[:, :1], lab_in[:, 1:])[0]
    return {"black_samples": total, "exact_share": exact / total if total else float("nan"), "max_dev": worst,
            "inner_samples": inner_total, "inner_exact_share": inner_exact / inner_total if inner_total else float("nan"),
            "inner_max_dev": inner_worst,
            "dark_cast": dark / n_dark if n_dark else float("nan"),
            "dark_cast_input": dark_in / n_dark if n_dark else float("nan")}


def _rgb(planes) -> np.ndarray:
    frame = av.VideoFrame(planes[0].shape[1], planes[0].shape[0], "yuv420p")
    for plane, arr in zip(frame.planes, planes):
        np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width] = arr
    return frame.to_ndarray(format="rgb24")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("film", type=Path)
    ap.add_argument("--ref", type=Path, default=None, help="reference still for the exemplar model")
    ap.add_argument("--models", nargs="+", default=["selfreg", "lstm", "exemplar"])
    ap.add_argument("--frames", type=int, default=None, help="frames to measure (default: all)")
    ap.add_argument("--codec", default=None, help="output codec (default: colorize's)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            if model == "exemplar" and args.ref is None:
                print("exemplar: skipped (no --ref)")
                continue
            out = Path(tmp) / f"{model}{'.mkv' if args.codec == 'ffv1' else args.film.suffix}"
            cmd = [sys.executable, "-m", "colorize", str(args.film), "-o", str(out), "--model", model, "-q"]
            if model == "exemplar":
                cmd += ["--ref", str(args.ref)]
            if args.codec:
                cmd += ["--codec", args.codec]
            subprocess.run(cmd, check=True)
            m = measure(args.film, out, args.frames)
            print(f"{model:9s} black chroma samples {m['black_samples']:9d}  exactly neutral {m['exact_share']:.4%}  "
                  f"max |U-128|,|V-128| {m['max_dev']:3d}  (8+ samples inside: {m['inner_exact_share']:.4%}, "
                  f"max {m['inner_max_dev']})  dark cast {m['dark_cast']:.2f} "
                  f"(input {m['dark_cast_input']:.2f})")


if __name__ == "__main__":
    main()
