"""Choose the annealed-mean temperature of a ``selfreg`` or ``lstm`` file with the ab class head, on validation.

    python benchmarks/class_temperature.py WEIGHTS --data DIR [--data DIR ...] [--batches 40]
        [--temps 1,0.7,0.5,0.42,0.38,0.32,0.26,0.2] [--tolerance 0.1] [--write OUT.pt]

Draws the trainer's validation split (by file and source video, the same split ``colorize train``
holds out; never dev_eval) at 128 px, decodes the class head at every temperature and prints, per
temperature, the PSNR gain over the grey input and the colourfulness ratio of what would be shown
(after the gamut step). The rule: the most colourful temperature among those within
``--tolerance`` dB of the best PSNR gain (colour bought for at most that much PSNR). Colder is not
always more colourful: without class rebalancing the modes are the neutral classes, and a cold
decode turns grey. ``--write`` saves a copy of WEIGHTS with the chosen temperature.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from colorize.color.gamut import limit_chroma  # noqa: E402
from colorize.color.lab import lab_to_rgb  # noqa: E402
from colorize.models.backbone import FrozenBackbone, load_pretrained_backbone  # noqa: E402
from colorize.models import lstm, selfreg  # noqa: E402
from colorize.training.data import DataConfig, build_samplers  # noqa: E402
from colorize.training.trainer import colourfulness, psnr  # noqa: E402


def logits_of(net, lab: torch.Tensor, backbone) -> torch.Tensor:
    """Class logits (B*T, Q, H/4, W/4) of Lab windows (B, T, 3, H, W) for either family."""
    if isinstance(net, selfreg.SelfRegNet):
        l = lab[:, :, :1].flatten(0, 1)
        return net.f.parts(l, backbone(l, strides=selfreg.BACKBONE_STRIDES, embed=True), 0)[1]
    l = lab[:, :, :1]
    feats = backbone(l.flatten(0, 1), strides=lstm.BACKBONE_STRIDES, embed=True)
    return net(l, feats, logits=True)[1]


def class_head(net):
    return net.f.cls if isinstance(net, selfreg.SelfRegNet) else net.cls


def sweep(net, batches, backbone, temps: list[float]) -> dict[float, tuple[float, float]]:
    """{T: (mean PSNR gain over grey in dB, colourfulness ratio)} over the batches."""
    head = class_head(net)
    sums = {t: [0.0, 0.0, 0.0] for t in temps}
    grey_sum, colour_gt = 0.0, 0.0
    with torch.no_grad():
        for b in batches:
            lab = b.lab.flatten(0, 1)
            l, gt = lab[:, :1], b.rgb.flatten(0, 1)
            grey_sum += psnr(lab_to_rgb(torch.cat((l, torch.zeros_like(lab[:, 1:])), 1)), gt)
            colour_gt += colourfulness(gt)
            logits = logits_of(net, b.lab, backbone)
            for t in temps:
                ab = limit_chroma(l, head.shown(logits, l, temperature=t))
                rgb = lab_to_rgb(torch.cat((l, ab), 1))
                sums[t][0] += psnr(rgb, gt)
                sums[t][1] += colourfulness(rgb)
    n = len(batches)
    return {t: (s[0] / n - grey_sum / n, s[1] / colour_gt) for t, s in sums.items()}


def choose(results: dict[float, tuple[float, float]], tolerance: float) -> float:
    best = max(g for g, _ in results.values())
    near = [t for t, (g, _) in results.items() if g >= best - tolerance]
    return max(near, key=lambda t: results[t][1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", type=Path)
    ap.add_argument("--data", action="append", required=True, type=Path)
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--batch", type=int, default=6)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--photo-size", type=int, default=256)
    ap.add_argument("--crop-min", type=float, default=0.4)
    ap.add_argument("--temps", default="1,0.7,0.5,0.42,0.38,0.32,0.26,0.2")
    ap.add_argument("--tolerance", type=float, default=0.1)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--write", type=Path, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    state = torch.load(args.weights, map_location="cpu", weights_only=True)
    family = selfreg if any(k.startswith("f.") for k in state) else lstm
    state = selfreg.checkpoint_filter_fn(state) if family is selfreg else lstm.with_calibration(state)
    net = family.net_for(state)
    if class_head(net) is None:
        print(f"{args.weights} has no ab class head", file=sys.stderr)
        return 2
    window = family.FAMILY.window
    net.load_state_dict(state)
    net.eval()
    cfg = DataConfig(size=args.size, window=window, photo_short=args.photo_size, crop_min=args.crop_min)
    _, val = build_samplers(args.data, cfg)
    batches = [val.batch(i, args.batch) for i in range(args.batches)]
    temps = sorted({float(t) for t in args.temps.split(",")}, reverse=True)
    variant = getattr(net, "backbone_variant", "lite0")
    results = sweep(net, batches, FrozenBackbone(load_pretrained_backbone(variant)), temps)
    print(f"validation: {args.batches} batches x {args.batch} windows of {window} at {args.size} px; backbone {variant}; file T = {float(class_head(net).temperature):.2f}")
    print("T      gain dB  colourfulness")
    for t, (gain, colour) in results.items():
        print(f"{t:<6.2f} {gain:+7.3f}  {colour:.3f}")
    best = choose(results, args.tolerance)
    print(f"chosen T = {best:.2f} (the most colourful within {args.tolerance} dB of the best gain)")
    if args.write:
        class_head(net).temperature.fill_(best)
        torch.save(net.state_dict(), args.write)
        print(f"wrote {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
