"""Link the clips that ``colorize train`` holds out for validation into a folder of their own.

    python benchmarks/validation_clips.py CLIPS_DIR OUT_DIR

The trainer splits clips by source video (``colorize.training.data.is_validation_clip``); the held-out
ones never train any file, so ``colorize eval OUT_DIR --weights FILE`` on them is a validation
figure measured the way dev_eval is (whole frames, the real pipeline, render size 256), for
choosing between trained files without looking at dev_eval. Prints one line per clip linked.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from colorize.evaluation.runner import VIDEO_SUFFIXES  # noqa: E402  (what colorize eval reads)
from colorize.training.data import is_validation_clip  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clips", type=Path)
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    n = 0
    for clip in sorted(p for p in args.clips.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES):
        if is_validation_clip(clip):
            link = args.out / clip.name
            if not link.exists():
                link.symlink_to(clip.resolve())
            print(link)
            n += 1
    print(f"{n} validation clips in {args.out}", file=sys.stderr)
    return 0 if n else 1


if __name__ == "__main__":
    sys.exit(main())
