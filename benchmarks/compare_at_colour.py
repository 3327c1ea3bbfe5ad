"""Is file B better than file A at equal colour, by more than the choice of clips moves it?

    python benchmarks/compare_at_colour.py A.pt B.pt CLIPS... [--model selfreg] --gains-a 0.9,1 \
        --gains-b 1.1,1.2 [--colour 0.8] [--max-frames 40] [--boot 5000]

Two automatic files are compared where it matters: at the same colourfulness. Each runs
``colorize eval``'s measurement on CLIPS (colour clips neither trained on; never dev_eval for a
choice) at two or more chroma gains (the file's ``chroma_gain`` buffer, set absolutely) that
bracket ``--colour``, the target colourfulness ratio of the whole set (default: A's at its first
gain). The set's colour is the mean of the clips' ratios, so the line between the two gains that
bracket it gives every clip's PSNR gain at that colour with the same weights. The paired per-clip
differences B - A are then resampled by source video (a clip's name without a ``_partN`` suffix:
parts of one video are not independent) to give a 90 % interval of the mean difference.

An interval that straddles zero says that this set cannot tell the two files apart: with the six
source videos of the held-out clips (or the five of dev_eval), 0.3 dB is often inside it
(fourteenth session). Prints per-clip figures, the mean difference and the interval.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from colorize.evaluation.runner import evaluate, find_clips  # noqa: E402
from colorize.models import create_model  # noqa: E402


def at_colour(results: dict, target: float) -> tuple[float, list[float], bool]:
    """``results`` {gain: (set colourfulness ratio, [per-clip PSNR gain])} -> (gain, per-clip PSNR
    gain at the set colour ``target``, whether it lies between two measured gains). Linear between
    the two gains that bracket the target; outside them, the line through the nearest two
    (extrapolated: the flag is False)."""
    gains = sorted(results)
    if len(gains) < 2:
        raise ValueError("need at least two gains per file")
    pairs = list(zip(gains[:-1], gains[1:]))
    inside = [(a, b) for a, b in pairs if min(results[a][0], results[b][0]) <= target <= max(results[a][0], results[b][0])]
    if inside:
        a, b = inside[0]
    else:
        a, b = pairs[0] if target < min(results[g][0] for g in gains) else pairs[-1]
    ca, cb = results[a][0], results[b][0]
    if cb == ca:
        raise ValueError(f"gains {a} and {b} give the same colour: cannot read off {target}")
    w = (target - ca) / (cb - ca)
    psnr = [pa + w * (pb - pa) for pa, pb in zip(results[a][1], results[b][1])]
    return a + w * (b - a), psnr, bool(inside)


def source_of(name: str) -> str:
    """The source video of a clip file: its stem without a ``_partN`` suffix."""
    return re.sub(r"_part\d+$", "", Path(name).stem)


def paired_interval(diffs: list[float], groups: list[str], boot: int = 5000, seed: int = 0,
                    level: float = 0.9) -> tuple[float, float, float]:
    """Mean of ``diffs`` and its ``level`` bootstrap interval, resampling whole groups (source
    videos) with replacement and averaging the clips of the groups drawn."""
    if len(diffs) != len(groups) or not diffs:
        raise ValueError("one group per difference, at least one")
    by_group: dict[str, list[float]] = {}
    for d, g in zip(diffs, groups):
        by_group.setdefault(g, []).append(d)
    keys = sorted(by_group)
    rng = random.Random(seed)
    means = []
    for _ in range(boot):
        drawn = [x for k in rng.choices(keys, k=len(keys)) for x in by_group[k]]
        means.append(sum(drawn) / len(drawn))
    means.sort()
    tail = (1 - level) / 2
    lo, hi = means[int(tail * (boot - 1))], means[int(round((1 - tail) * (boot - 1)))]
    return sum(diffs) / len(diffs), lo, hi


def _gain_buffer(model) -> torch.Tensor:
    found = [b for n, b in model.net.named_buffers() if n == "chroma_gain" or n.endswith(".chroma_gain")]
    if not found:
        raise SystemExit("this file's model has no chroma_gain buffer (selfreg and lstm have one)")
    return found[0]


def measure(model_name: str, weights: Path, clips: list, gains: list[float], max_frames: int) -> dict:
    model = create_model(model_name, device="cpu", weights=weights)
    buf = _gain_buffer(model)
    results = {}
    for g in gains:
        buf.fill_(g)
        report = evaluate(model, clips, max_frames=max_frames)
        mean = report.mean()
        results[g] = (mean["colourfulness_ratio"], [c.psnr_gain for c in report.clips])
        print(f"{weights.name:<24} gain {g:<5.2f} PSNR gain {mean['psnr_gain']:+.3f}  colour "
              f"{mean['colourfulness_ratio']:.3f}", flush=True)
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("clips", nargs="+")
    ap.add_argument("--model", default="selfreg", choices=("selfreg", "lstm"))
    ap.add_argument("--gains-a", required=True)
    ap.add_argument("--gains-b", required=True)
    ap.add_argument("--colour", type=float, default=None, help="target colourfulness ratio (default: A's at its first gain)")
    ap.add_argument("--max-frames", type=int, default=40)
    ap.add_argument("--boot", type=int, default=5000)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    clips = find_clips(args.clips)
    gains_a = sorted(float(g) for g in args.gains_a.split(","))
    gains_b = sorted(float(g) for g in args.gains_b.split(","))
    res_a = measure(args.model, args.a, clips, gains_a, args.max_frames)
    res_b = measure(args.model, args.b, clips, gains_b, args.max_frames)
    target = args.colour if args.colour is not None else res_a[gains_a[0]][0]
    ga, pa, ia = at_colour(res_a, target)
    gb, pb, ib = at_colour(res_b, target)
    names = [Path(c).name for c in clips]
    diffs = [b - a for a, b in zip(pa, pb)]
    print(f"\nat colourfulness {target:.3f}: A at gain {ga:.3f}{'' if ia else ' (extrapolated)'}, "
          f"B at gain {gb:.3f}{'' if ib else ' (extrapolated)'}")
    print(f"{'clip':<44} {'A':>7} {'B':>7} {'B-A':>7}")
    for n, a, b in zip(names, pa, pb):
        print(f"{n:<44} {a:+7.2f} {b:+7.2f} {b - a:+7.2f}")
    groups = [source_of(n) for n in names]
    mean, lo, hi = paired_interval(diffs, groups, args.boot)
    print(f"B - A: {mean:+.3f} dB, 90 % interval {lo:+.3f} .. {hi:+.3f} over {len(set(groups))} source videos"
          + ("  (the set cannot tell them apart)" if lo <= 0 <= hi else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
