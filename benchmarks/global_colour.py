"""How much of an automatic model's error is one colour correction per frame away?

    python benchmarks/global_colour.py CLIPS... [--model selfreg] [--weights FILE]
        [--max-frames 40] [--render-size 256] [--threads 0] [--offset A,B]

Colourizes each clip's grey version as ``colorize eval`` does (the model's stream at render size
256, the pipeline's guided upsampling and gamut step at full resolution) and prints, per clip and
on average, the PSNR gain over grey of

* the output as it is,
* the output with an oracle per-frame correction fitted to the truth: an ab offset (the frame's
  mean error), a chroma gain (least squares), and a 2x2 ab matrix plus offset (least squares);

and the mean a, b and chroma |ab| of output and original. ``--offset A,B`` adds a constant ab to
every output first (before the gamut step), e.g. minus a model's mean bias measured here: what a
fixed calibration, with no oracle, would give. If an oracle correction of 6 numbers
per frame buys dB that the model lacks, that part of the error is the frame's overall palette
(white balance, a tint), not where the colours go; if the output's mean ab is close to the
originals' over many clips, the model has no systematic cast, only per-scene guesses.
Use colour clips the model was not trained on (here: the held-out validation clips,
``benchmarks/validation_clips.py``). Oracle figures need the truth: they bound, they do not ship.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from colorize.color.gamut import finish_ab  # noqa: E402
from colorize.color.lab import lab_to_rgb, rgb_to_lab  # noqa: E402
from colorize.evaluation.runner import find_clips, grey_rgb, iter_rgb, render_shape, resize  # noqa: E402
from colorize.models import create_model  # noqa: E402

KINDS = ("output", "offset", "gain", "affine")


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(1.0 / max(float(((a - b) ** 2).mean()), 1e-12))


def corrections(ab: torch.Tensor, gt: torch.Tensor) -> dict[str, torch.Tensor]:
    """The output ab (1, 2, H, W) and its three oracle corrections towards the truth gt."""
    x = ab.flatten(2)[0].T.double()  # (N, 2)
    y = gt.flatten(2)[0].T.double()
    gain = float((x * y).sum() / (x * x).sum().clamp_min(1e-9))
    design = torch.cat((x, torch.ones(x.shape[0], 1, dtype=x.dtype)), 1)
    affine = (design @ torch.linalg.lstsq(design, y).solution).T.reshape(ab.shape).to(ab.dtype)
    return {
        "output": ab,
        "offset": ab + (gt - ab).mean((2, 3), keepdim=True),
        "gain": ab * gain,
        "affine": affine,
    }


def measure(model, path: Path, max_frames: int, render_size: int, offset=(0.0, 0.0),
            oracles: bool = True) -> dict:
    """{"gains": PSNR gain over grey per kind of :data:`KINDS` (empty without ``oracles``),
    "stats": mean [output a, output b, original a, original b, output |ab|, original |ab|]}."""
    model.reset()
    labs, rgbs = [], []
    for rgb_u8 in iter_rgb(path, max_frames, None):
        rgb = torch.from_numpy(rgb_u8).permute(2, 0, 1).float()[None] / 255.0
        rgbs.append(rgb)
        labs.append(rgb_to_lab(rgb))
    size = tuple(render_shape(*labs[0].shape[-2:], render_size, model.info.size_multiple))
    outs = {}
    with torch.no_grad():
        for i, lab in enumerate(labs):
            outs.update(model.push(i, resize(lab[:, :1], size)[0]))
        outs.update(model.flush())
    sums = dict.fromkeys(KINDS, 0.0)
    sums["grey"] = 0.0
    stats = torch.zeros(6, dtype=torch.float64)
    for i, (lab, rgb) in enumerate(zip(labs, rgbs)):
        l, gt = lab[:, :1], lab[:, 1:]
        ab = outs[i].reshape(1, 2, *size).float() + torch.tensor(offset).view(1, 2, 1, 1)
        ab = finish_ab(ab, l)
        if oracles:
            for kind, x in corrections(ab, gt).items():
                sums[kind] += _psnr(lab_to_rgb(torch.cat((l, x), 1)).clamp(0, 1), rgb)
            sums["grey"] += _psnr(grey_rgb(l), rgb)
        stats += torch.tensor([ab[0, 0].mean(), ab[0, 1].mean(), gt[0, 0].mean(), gt[0, 1].mean(),
                               ab.norm(dim=1).mean(), gt.norm(dim=1).mean()], dtype=torch.float64)
    n = len(labs)
    gains = {k: (sums[k] - sums["grey"]) / n for k in KINDS} if oracles else {}
    return {"gains": gains, "stats": (stats / n).tolist()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clips", nargs="+")
    ap.add_argument("--model", default="selfreg")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--max-frames", type=int, default=40)
    ap.add_argument("--render-size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--offset", default="0,0", help="constant a,b added to every output first")
    args = ap.parse_args()
    offset = tuple(float(x) for x in args.offset.split(","))
    if len(offset) != 2:
        raise SystemExit(f"--offset takes A,B, got {args.offset!r}")
    if args.threads:
        torch.set_num_threads(args.threads)
    model = create_model(args.model, device="cpu", weights=args.weights)
    if model.info.needs_reference:
        raise SystemExit(f"{args.model} needs a reference: this measures automatic models")
    clips = find_clips(args.clips)
    print(f"{args.model}, {len(clips)} clips, {args.max_frames} frames each, render size {args.render_size}"
          + (f", offset a {offset[0]:+.1f} b {offset[1]:+.1f}" if any(offset) else ""))
    print(f"{'clip':32} " + " ".join(f"{k:>7}" for k in KINDS) + "   mean a/b out | truth   chroma out/truth")
    total = dict.fromkeys(KINDS, 0.0)
    total_stats = [0.0] * 6
    for path in clips:
        r = measure(model, path, args.max_frames, args.render_size, offset)
        for k in KINDS:
            total[k] += r["gains"][k] / len(clips)
        total_stats = [t + s / len(clips) for t, s in zip(total_stats, r["stats"])]
        print(_row(path.name, r["gains"], r["stats"]), flush=True)
    print(_row("mean", total, total_stats))
    return 0


def _row(name: str, gains: dict, s: list) -> str:
    return (f"{name[:32]:32} " + " ".join(f"{gains[k]:+7.2f}" for k in KINDS)
            + f"   {s[0]:+5.1f} {s[1]:+5.1f} | {s[2]:+5.1f} {s[3]:+5.1f}   {s[4]:5.1f} {s[5]:5.1f}")


if __name__ == "__main__":
    sys.exit(main())
