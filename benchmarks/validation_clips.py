"""Gather what ``colorize train`` holds out for validation into a folder of clips for ``colorize eval``.

    python benchmarks/validation_clips.py SRC [SRC ...] OUT_DIR [--per-source 12] [--frames 3]

Each SRC folder is searched (recursively) for clips and photos:
- held-out clips (the trainer splits them by source video, ``colorize.training.data.is_validation_clip``)
  are linked into OUT_DIR;
- held-out photos (split by file, or by folder for ``whole_folders``,
  ``colorize.training.data.is_validation_photo``) become short lossless clips (FFV1 in .mkv) of
  ``--frames`` frames zooming slowly into the photo, at most ``--per-source`` per source folder
  (chosen by name hash, so no one source dominates).
None of them ever trains a file, so ``colorize eval OUT_DIR --weights FILE`` on them is a validation
figure measured the way dev_eval is (whole frames, the real pipeline), for choosing between trained
files and calibrations without looking at dev_eval. The photos bring many more sources (about 30
folders) than the held-out clips (5 source videos). Prints one line per clip.
"""

from __future__ import annotations

import argparse
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from colorize.evaluation.runner import VIDEO_SUFFIXES  # noqa: E402  (what colorize eval reads)
from colorize.training.data import PHOTO_EXTS, is_validation_clip, is_validation_photo  # noqa: E402


def write_zoom_clip(rgb: np.ndarray, path: Path, frames: int, step: float = 0.03) -> None:
    """``frames`` frames of ``rgb`` (H, W, 3 uint8), frame i its central (1 - step * i) share resized
    back to the (even) full size: a slow zoom, losslessly encoded (FFV1, yuv420p, 10 fps)."""
    import av

    h, w = (rgb.shape[0] // 2) * 2, (rgb.shape[1] // 2) * 2
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    with av.open(str(tmp), "w") as out:
        s = out.add_stream("ffv1", rate=10)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for i in range(frames):
            k = 1.0 - step * i
            ch, cw = round(rgb.shape[0] * k), round(rgb.shape[1] * k)
            y, x = (rgb.shape[0] - ch) // 2, (rgb.shape[1] - cw) // 2
            img = cv2.resize(rgb[y:y + ch, x:x + cw], (w, h), interpolation=cv2.INTER_AREA)
            for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    tmp.replace(path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", type=Path, nargs="+", metavar="SRC [SRC ...] OUT_DIR")
    ap.add_argument("--per-source", type=int, default=12, help="most held-out photos per source folder")
    ap.add_argument("--frames", type=int, default=3, help="frames per photo clip")
    args = ap.parse_args()
    if len(args.paths) < 2:
        ap.error("give at least one source folder and the output folder")
    *sources, out_dir = args.paths
    out_dir.mkdir(parents=True, exist_ok=True)
    n = 0
    photos: dict[str, list[Path]] = {}
    for src in sources:
        for f in sorted(src.rglob("*")):
            if f.suffix.lower() in VIDEO_SUFFIXES and is_validation_clip(f):
                link = out_dir / f.name
                if not link.exists():
                    link.symlink_to(f.resolve())
                print(link)
                n += 1
            elif f.suffix.lower() in PHOTO_EXTS and is_validation_photo(f):
                photos.setdefault(f"{f.parent.parent.name}_{f.parent.name}", []).append(f)
    for source, files in sorted(photos.items()):
        files.sort(key=lambda f: zlib.crc32(f.name.encode()))
        for f in files[: args.per_source]:
            bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if bgr is None or min(bgr.shape[:2]) < 64:
                continue
            clip = out_dir / f"photo_{source}_{f.stem}.mkv"
            if not clip.exists():
                write_zoom_clip(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), clip, args.frames)
            print(clip)
            n += 1
    print(f"{n} validation clips in {out_dir}", file=sys.stderr)
    return 0 if n else 1


if __name__ == "__main__":
    sys.exit(main())
