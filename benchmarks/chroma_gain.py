"""Choose a `selfreg` file's chroma calibration on validation clips, and write it into the file.

    python benchmarks/chroma_gain.py WEIGHTS CLIPS... [--gains 1,1.1,1.2,1.3] [--max-frames 40]
        [--temperatures 1,0.5,0.25] [--semantic-scales 1,1.5] [--tolerance 0.1 | --min-colour 0.8] [--write OUT]

Regression to ab under uncertainty shrinks chroma towards the grey-brown mean. The file's
``f.chroma_gain`` (a buffer; 1 = none) multiplies every output of f before the refine pass and the
gamut step. This script runs ``colorize eval``'s measurement (render size 256, the model's own
refine pass) on CLIPS — colour clips the file was NOT trained on and that are not the clips you
will report on (for this repository: the training split's held-out validation clips, never
dev_eval) — once per gain, prints PSNR gain and colourfulness ratio, and picks the most colourful
gain whose PSNR gain is within ``--tolerance`` dB of the best one (the rule of
``benchmarks/class_temperature.py``). ``--write OUT`` saves the file with that gain.

A file with the mode selector (``--set select=1``) also carries the selector's temperature
(``f.select.temperature``): ``--temperatures`` sweeps every (temperature, gain) pair and the same
rule picks the pair.

``--semantic-scales 1,1.5`` sweeps the size at which the frozen backbone reads L relative to f's
(the file's ``semantic_scale``; see ``colorize.models.selfreg.semantic_input``) together with the
rest, and ``--write`` stores the chosen one.

``--min-colour C`` replaces that rule by a colour target: the setting with the best PSNR gain among
those whose colourfulness ratio is at least C (the most colourful one if none reaches it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from class_temperature import choose  # noqa: E402  (the same rule: most colourful within tolerance)

from colorize.evaluation.runner import evaluate, find_clips  # noqa: E402
from colorize.models import create_model  # noqa: E402
from colorize.models.selfreg import checkpoint_filter_fn  # noqa: E402


def choose_at_colour(results: dict, min_colour: float):
    """The key of ``results`` ({key: (PSNR gain, colourfulness ratio)}) with the best PSNR gain among
    those at least ``min_colour`` colourful; the most colourful key if none is."""
    ok = [k for k, (_, c) in results.items() if c >= min_colour]
    if not ok:
        return max(results, key=lambda k: results[k][1])
    return max(ok, key=lambda k: results[k][0])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", type=Path)
    ap.add_argument("clips", nargs="+")
    ap.add_argument("--gains", default="1,1.1,1.2,1.3")
    ap.add_argument("--temperatures", default=None,
                    help="comma-separated mode-selector temperatures (files with the selector)")
    ap.add_argument("--semantic-scales", default=None,
                    help="comma-separated sizes at which the backbone reads L, relative to f's (e.g. 1,1.5)")
    ap.add_argument("--max-frames", type=int, default=40)
    ap.add_argument("--render-size", type=int, default=256)
    ap.add_argument("--tolerance", type=float, default=0.1)
    ap.add_argument("--min-colour", type=float, default=None,
                    help="pick the best PSNR among settings at least this colourful instead")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--write", type=Path, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    state = checkpoint_filter_fn(torch.load(args.weights, map_location="cpu", weights_only=True))
    clips = find_clips(args.clips)
    model = create_model("selfreg", device="cpu", weights=args.weights)
    gains = sorted({float(g) for g in args.gains.split(",")})
    select = model.net.f.select
    if args.temperatures and select is None:
        raise SystemExit(f"{args.weights} has no mode selector: --temperatures does not apply")
    temps = sorted({float(t) for t in args.temperatures.split(",")}) if args.temperatures else [None]
    scales = sorted({float(x) for x in args.semantic_scales.split(",")}) if args.semantic_scales else [None]
    results = {}
    print(f"{len(clips)} clips, {args.max_frames} frames each, render size {args.render_size}; "
          f"file gain {float(state['f.chroma_gain']):.2f}"
          + (f", selector temperature {float(state['f.select.temperature']):.2f}" if select is not None else "")
          + f", semantic scale {float(state['semantic_scale']):.2f}")
    print("scale  temp   gain   PSNR gain dB  colourfulness  flicker")
    for sc in scales:
        if sc is not None:
            model.net.semantic_scale.fill_(sc)
        for t in temps:
            if t is not None:
                select.temperature.fill_(t)
            for g in gains:
                model.net.f.chroma_gain.fill_(g)
                m = evaluate(model, clips, max_frames=args.max_frames, render_size=args.render_size).mean()
                results[(sc, t, g)] = (m["psnr_gain"], m["colourfulness_ratio"])
                print(f"{'-' if sc is None else f'{sc:.2f}':<6} {'-' if t is None else f'{t:.2f}':<6} {g:<6.2f} "
                      f"{m['psnr_gain']:+12.3f}  {m['colourfulness_ratio']:13.3f}  {m['flicker_ratio']:7.3f}",
                      flush=True)
    if args.min_colour is None:
        best_s, best_t, best = choose(results, args.tolerance)
        why = f"the most colourful within {args.tolerance} dB of the best PSNR gain"
    else:
        best_s, best_t, best = choose_at_colour(results, args.min_colour)
        why = f"the best PSNR gain at colourfulness >= {args.min_colour}"
    print(f"chosen gain = {best:.2f}" + ("" if best_t is None else f", temperature = {best_t:.2f}")
          + ("" if best_s is None else f", semantic scale = {best_s:.2f}") + f" ({why})")
    if args.write:
        state["f.chroma_gain"] = torch.tensor(best)
        if best_t is not None:
            state["f.select.temperature"] = torch.tensor(best_t)
        if best_s is not None:
            state["semantic_scale"] = torch.tensor(best_s)
        torch.save(state, args.write)
        print(f"wrote {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
