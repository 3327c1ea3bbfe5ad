"""Make ``docs/example_contact_sheet.jpg``: the example clip grey / automatic / ``exemplar``.

Runs ``colorize`` on ``examples/clip.mp4`` twice (the default automatic model, then with
``--ref examples/still.jpg``) into a temporary folder, then tiles four frames (two per shot) as rows
of [grey input | automatic | exemplar], each at half size. Run it after shipping new weights:

    python examples/make_contact_sheet.py

The same for another film, e.g. the legacy excerpt of the development data (``docs/v32_contact_sheet.jpg``):

    python examples/make_contact_sheet.py --film ../shared/data/legacy/v32.mp4 \
        --ref ../shared/data/legacy/v32_ref_01.jpg --frames 20 90 160 --out docs/v32_contact_sheet.jpg

A development tool: nothing in the package imports it.
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

HERE = Path(__file__).resolve().parent
FRAMES = (4, 36, 52, 80)  # shot 1: frames 0-47, shot 2: 48-83


def _frames(path: Path, wanted: tuple[int, ...]) -> list[np.ndarray]:
    out = {}
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i in wanted:
                out[i] = f.to_ndarray(format="rgb24")
    return [out[i] for i in wanted]


def main() -> None:
    ap = argparse.ArgumentParser(description="grey | automatic | exemplar contact sheet")
    ap.add_argument("--film", type=Path, default=HERE / "clip.mp4")
    ap.add_argument("--ref", type=Path, default=HERE / "still.jpg")
    ap.add_argument("--frames", type=int, nargs="+", default=list(FRAMES))
    ap.add_argument("--out", type=Path, default=HERE.parent / "docs" / "example_contact_sheet.jpg")
    ap.add_argument("--width", type=int, default=0, help="width of each tile (default: half the film's)")
    args = ap.parse_args()
    wanted = tuple(args.frames)
    with tempfile.TemporaryDirectory() as tmp:
        auto, ref = Path(tmp) / "automatic.mkv", Path(tmp) / "exemplar.mkv"
        base = [sys.executable, "-m", "colorize", str(args.film), "--codec", "ffv1", "-q"]
        subprocess.run([*base, "-o", str(auto)], check=True)
        subprocess.run([*base, "--ref", str(args.ref), "-o", str(ref)], check=True)
        columns = [_frames(p, wanted) for p in (args.film, auto, ref)]

    def tile(img: np.ndarray) -> np.ndarray:
        f = args.width / img.shape[1] if args.width else 0.5
        return cv2.resize(img, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)

    sheet = np.vstack([np.hstack([tile(col[r]) for col in columns]) for r in range(len(wanted))])
    dest = args.out
    cv2.imwrite(str(dest), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(f"wrote {dest} ({sheet.shape[1]}x{sheet.shape[0]})")


if __name__ == "__main__":
    main()
