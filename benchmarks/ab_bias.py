"""Measure an `lstm` file's mean colour bias on validation clips, and write its correction into the file.

    python benchmarks/ab_bias.py WEIGHTS CLIPS... [--max-frames 40] [--render-size 256]
        [--threads 0] [--write OUT]

Runs the file as ``colorize eval`` does (``benchmarks/global_colour.py``'s measurement) on CLIPS,
colour clips the file was NOT trained on and that are not the clips you will report on (for this
repository: the training split's held-out validation clips, never dev_eval). The bias is the mean
over clips of (output mean a, b) - (original mean a, b). The file's ``ab_offset`` (0 in older
files; the stream shows ab -> gain * (ab + offset)) is then corrected by minus that bias (divided
by the file's gain), printed,
and with ``--write OUT`` saved. Run it again on the written file: the remaining bias should be
near 0.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from global_colour import measure  # noqa: E402  (the same measurement)

from colorize.evaluation.runner import find_clips  # noqa: E402
from colorize.models import create_model  # noqa: E402
from colorize.models.lstm import with_calibration  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", type=Path)
    ap.add_argument("clips", nargs="+")
    ap.add_argument("--max-frames", type=int, default=40)
    ap.add_argument("--render-size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--write", type=Path, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    state = with_calibration(torch.load(args.weights, map_location="cpu", weights_only=True))
    if "enc1.0.weight" not in state:
        raise SystemExit(f"{args.weights} is not an lstm weights file")
    model = create_model("lstm", device="cpu", weights=args.weights)
    clips = find_clips(args.clips)
    bias = torch.zeros(2, dtype=torch.float64)
    for path in clips:
        s = measure(model, path, args.max_frames, args.render_size, oracles=False)["stats"]
        bias += torch.tensor([s[0] - s[2], s[1] - s[3]], dtype=torch.float64) / len(clips)
        print(f"{path.name[:32]:32} output a {s[0]:+5.1f} b {s[1]:+5.1f}   original a {s[2]:+5.1f} b {s[3]:+5.1f}",
              flush=True)
    old = state["ab_offset"].double()
    new = old - bias / float(state["chroma_gain"])  # the stream shows gain * (ab + offset)
    print(f"bias a {bias[0]:+.2f} b {bias[1]:+.2f}; offset a {old[0]:+.2f} b {old[1]:+.2f} -> "
          f"a {new[0]:+.2f} b {new[1]:+.2f}")
    if args.write:
        state["ab_offset"] = new.float()
        torch.save(state, args.write)
        print(f"wrote {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
