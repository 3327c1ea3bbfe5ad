"""Make ``docs/example_contact_sheet.jpg``: the example clip grey / automatic / ``exemplar``.

Runs ``colorize`` on ``examples/clip.mp4`` twice (the default automatic model, then with
``--ref examples/still.jpg``) into a temporary folder, then tiles four frames (two per shot) as rows
of [grey input | automatic | exemplar], each at half size. Run it after shipping new weights:

    python examples/make_contact_sheet.py

A development tool: nothing in the package imports it.
"""

from __future__ import annotations

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
    clip = HERE / "clip.mp4"
    with tempfile.TemporaryDirectory() as tmp:
        auto, ref = Path(tmp) / "automatic.mkv", Path(tmp) / "exemplar.mkv"
        base = [sys.executable, "-m", "colorize", str(clip), "--codec", "ffv1", "-q"]
        subprocess.run([*base, "-o", str(auto)], check=True)
        subprocess.run([*base, "--ref", str(HERE / "still.jpg"), "-o", str(ref)], check=True)
        columns = [_frames(p, FRAMES) for p in (clip, auto, ref)]
    rows = [np.hstack([cv2.resize(col[r], None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA) for col in columns])
            for r in range(len(FRAMES))]
    sheet = np.vstack(rows)
    dest = HERE.parent / "docs" / "example_contact_sheet.jpg"
    cv2.imwrite(str(dest), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(f"wrote {dest} ({sheet.shape[1]}x{sheet.shape[0]})")


if __name__ == "__main__":
    main()
