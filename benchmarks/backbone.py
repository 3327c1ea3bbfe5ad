"""EfficientNet-Lite0 against Lite2 as the frozen backbone: speed, size and ImageNet accuracy.

    python benchmarks/backbone.py                     # timings + chelsea + the local ImageNet sample
    python benchmarks/backbone.py --no-imagenet       # timings and chelsea only (a few seconds)
    python benchmarks/backbone.py --threads 1 --limit 212   # a quarter of the sample (every 4th photo)
    python benchmarks/backbone.py --threads 2 --rounds 3 --no-imagenet --json

Needs the optional extra for Lite2: ``pip install -e '.[lite2]'`` (issue 12, item 5).

For each variant:

* backbone forward time per frame, exactly what a family asks of it per frame: grey L in, features
  at strides 2..32 plus the 1280-d embedding out (``FrozenBackbone``), at the render size of an
  854x480 frame (short side 256 -> 256x448), channels-last as ``selfreg`` runs it and contiguous as
  ``lstm`` does; and per 128x128 training crop in a batch of 6 (the trainer's batch). Variants are
  timed alternately, round by round, so drifting load on a shared machine hits both alike; the
  median over rounds is printed, of wall time and of CPU time. On a machine whose cores are busy
  with other work the single-thread CPU time is the comparable figure; two-thread timings there
  mostly measure threads waiting for each other's time slices.
* parameters: the feature path the families run (stem, blocks, head) and with the classifier.
* scikit-image's chelsea (ImageNet class 285, Egyptian cat): the top-5 classes.
* top-1/top-5 on the local ImageNet sample (``shared/data/photos/imagenet``: one photo per class,
  851 of the 1000 classes, JPEGs named ``<wnid>_<name>.jpg``) at each variant's own resolution
  (short side res/0.875, centre crop), in colour and as grey through ``normalize_l`` — the grey
  figure is the one that matters here, since the backbone only ever sees L. One photo per class is a
  small sample of unknown split: read the difference between the variants, not the absolute level.

Nothing is downloaded. The class index of a wnid is its rank among the 1000 ILSVRC-2012 wnids
(sorted); those the sample lacks are listed below, so sample + list must give exactly 1000.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from colorize.color.lab import rgb_to_lab  # noqa: E402
from colorize.models.backbone import (  # noqa: E402
    VARIANTS,
    FrozenBackbone,
    load_pretrained_backbone,
    normalize_l,
    normalize_rgb255,
)

RENDER = (256, 448)  # render_shape(480, 854, 256, 32): the families' default working size
CROP, CROP_BATCH = 128, 6  # training crops, trainer batch
CHELSEA_CLASS = 285
SAMPLE = ROOT.parent / "shared" / "data" / "photos" / "imagenet"
# The ILSVRC-2012 wnids absent from the local sample (tensorflow/models
# research/slim/datasets/imagenet_lsvrc_2015_synsets.txt minus the sample's 851).
MISSING_WNIDS = """
n01614925 n01631663 n01632458 n01644373 n01694178 n01704323 n01728572 n01729322 n01744401 n01748264
n01749939 n01753488 n01755581 n01770081 n01795545 n01796340 n01806567 n01807496 n01828970 n01871265
n01914609 n01944390 n01945685 n01950731 n01968897 n01985128 n02074367 n02085782 n02086646 n02088466
n02091134 n02093256 n02096051 n02100583 n02100877 n02106382 n02109047 n02109961 n02110185 n02111500
n02114855 n02128925 n02129165 n02129604 n02172182 n02319095 n02356798 n02410509 n02422106 n02444819
n02487347 n02492035 n02493509 n02606052 n02669723 n02672831 n02676566 n02692877 n02730930 n02749479
n02769748 n02808304 n02815834 n02817516 n02823750 n02835271 n02837789 n02843684 n02895154 n02951358
n02965783 n02974003 n02999410 n03028079 n03045698 n03095699 n03110669 n03131574 n03141823 n03207743
n03218198 n03240683 n03259280 n03388043 n03417042 n03483316 n03485407 n03485794 n03498962 n03532672
n03544143 n03584829 n03642806 n03676483 n03692522 n03697007 n03706229 n03759954 n03764736 n03776460
n03804744 n03866082 n03868863 n03873416 n03877845 n03884397 n03908714 n03929855 n03947888 n03970156
n03992509 n04008634 n04070727 n04074963 n04090263 n04125021 n04136333 n04141076 n04146614 n04153751
n04179913 n04238763 n04254680 n04286575 n04326547 n04336792 n04347754 n04350905 n04355933 n04356056
n04367480 n04371774 n04372370 n04389033 n04398044 n04442312 n04487394 n04501370 n04532106 n04532670
n04554684 n06359193 n07248320 n07579787 n07892512 n09288635 n12144580 n12985857 n13044778
""".split()


def forward_ms(nets: dict, make_input, rounds: int, warmup: int = 2) -> dict[str, dict[str, float]]:
    """Median ms per call of each backbone on ``make_input()``, the variants alternating per round:
    wall time, and the process's CPU time. With one thread the CPU time is what the call would take
    on an idle core (waiting for a busy one does not count), so on a loaded machine it is the figure
    to compare with earlier idle measurements; with more threads it sums them."""
    x = make_input()
    wall: dict[str, list[float]] = {name: [] for name in nets}
    cpu: dict[str, list[float]] = {name: [] for name in nets}
    with torch.inference_mode():
        for r in range(warmup + rounds):
            for name, bb in nets.items():
                t0, c0 = time.perf_counter(), time.process_time()
                bb(x, strides=(2, 4, 8, 16, 32), embed=True)
                if r >= warmup:
                    wall[name].append((time.perf_counter() - t0) * 1e3)
                    cpu[name].append((time.process_time() - c0) * 1e3)
    return {name: {"wall": statistics.median(wall[name]), "cpu": statistics.median(cpu[name])} for name in nets}


def timings(variants: list[str], threads: list[int], rounds: int) -> dict:
    plain = {v: FrozenBackbone(load_pretrained_backbone(v)) for v in variants}
    cl = {v: FrozenBackbone(load_pretrained_backbone(v)).to(memory_format=torch.channels_last) for v in variants}
    g = torch.Generator().manual_seed(0)
    frame = torch.rand(1, 1, *RENDER, generator=g) * 100
    crops = torch.rand(CROP_BATCH, 1, CROP, CROP, generator=g) * 100
    out: dict = {}
    for n in threads:
        torch.set_num_threads(n)
        crop = forward_ms(plain, lambda: crops, rounds)
        out[n] = {
            "render_cl": forward_ms(cl, lambda: frame.contiguous(memory_format=torch.channels_last), rounds),
            "render": forward_ms(plain, lambda: frame, rounds),
            "crop": {v: {k: t / CROP_BATCH for k, t in d.items()} for v, d in crop.items()},
        }
    return out


def param_counts(net) -> tuple[int, int]:
    total = sum(p.numel() for p in net.parameters())
    fc = sum(p.numel() for p in net._fc.parameters())
    return total - fc, total


def chelsea_top5(net, size: int) -> list[tuple[int, float]]:
    from skimage import data

    img = torch.from_numpy(data.chelsea()).permute(2, 0, 1)[None].float()
    img = F.interpolate(img, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    with torch.inference_mode():
        probs = net(normalize_rgb255(img)).softmax(1)[0]
    p, i = probs.topk(5)
    return [(int(c), round(float(q), 3)) for c, q in zip(i, p)]


def class_index(sample_wnids: set[str]) -> dict[str, int]:
    wnids = sorted(sample_wnids | set(MISSING_WNIDS))
    if len(wnids) != 1000 or wnids[285] != "n02124075":
        raise SystemExit(f"{len(wnids)} wnids from sample + missing list, expected the 1000 ILSVRC-2012 classes")
    return {w: i for i, w in enumerate(wnids)}


def load_crop(path: Path, res: int) -> torch.Tensor:
    """RGB (3, res, res) in [0, 255]: short side to res / 0.875 (area-antialiased), centre crop."""
    from PIL import Image

    with Image.open(path) as im:
        rgb = torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1)[None].float()
    h, w = rgb.shape[-2:]
    short = round(res / 0.875)
    size = (short, max(res, round(w * short / h))) if h <= w else (max(res, round(h * short / w)), short)
    rgb = F.interpolate(rgb, size=size, mode="bilinear", antialias=True, align_corners=False)
    top, left = (size[0] - res) // 2, (size[1] - res) // 2
    return rgb[0, :, top : top + res, left : left + res]


def imagenet_accuracy(nets: dict, sample: Path, limit: int, batch: int = 16) -> dict:
    files = sorted(p for p in sample.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    index = class_index({p.name[:9] for p in files})
    files = files[:: max(1, len(files) // limit)] if limit else files
    labels = torch.tensor([index[p.name[:9]] for p in files])
    out: dict = {}
    for name, net in nets.items():
        res = VARIANTS[name].resolution
        hits = {"colour": [0, 0], "grey": [0, 0]}  # top-1, top-5
        t0 = time.perf_counter()
        for s in range(0, len(files), batch):
            rgb = torch.stack([load_crop(p, res) for p in files[s : s + batch]])
            y = labels[s : s + batch, None]
            grey_in = normalize_l(rgb_to_lab(rgb / 255.0)[:, :1])
            with torch.inference_mode():
                for mode, x in (("colour", normalize_rgb255(rgb)), ("grey", grey_in)):
                    top5 = net(x).topk(5, dim=1).indices
                    hits[mode][0] += int((top5[:, :1] == y).sum())
                    hits[mode][1] += int((top5 == y).any(1).sum())
        out[name] = {
            f"{mode}_top{k}": round(100.0 * h[j] / len(files), 1)
            for mode, h in hits.items()
            for j, k in ((0, 1), (1, 5))
        }
        out[name]["seconds"] = round(time.perf_counter() - t0, 1)
    out["images"] = len(files)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", nargs="+", default=["lite0", "lite2"], choices=sorted(VARIANTS))
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--rounds", type=int, default=7, help="timed rounds per configuration (median)")
    ap.add_argument("--sample", type=Path, default=SAMPLE, help="folder of <wnid>_*.jpg ImageNet photos")
    ap.add_argument("--limit", type=int, default=0, help="evaluate about this many photos (0: all)")
    ap.add_argument("--imagenet-threads", type=int, default=1)
    ap.add_argument("--no-imagenet", action="store_true", help="skip the ImageNet sample")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    nets = {v: load_pretrained_backbone(v) for v in args.variants}
    report: dict = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, "
        f"torch {torch.__version__}",
        "params": {v: dict(zip(("features", "with_fc"), param_counts(n))) for v, n in nets.items()},
        "chelsea_top5": {v: chelsea_top5(n, VARIANTS[v].resolution) for v, n in nets.items()},
        "timings": timings(args.variants, args.threads, args.rounds),
    }
    if not args.no_imagenet:
        if args.sample.is_dir():
            torch.set_num_threads(args.imagenet_threads)
            report["imagenet_sample"] = imagenet_accuracy(nets, args.sample, args.limit)
        else:
            report["imagenet_sample"] = f"no sample at {args.sample}"
    report["load_after"] = f"{os.getloadavg()[0]:.1f}"

    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"# {report['machine']}; render {RENDER[0]}x{RENDER[1]}, crops {CROP}x{CROP} (batch {CROP_BATCH})")
    for v in args.variants:
        p = report["params"][v]
        print(f"{v}: {p['features'] / 1e6:.2f} M params in the feature path "
              f"({p['with_fc'] / 1e6:.2f} M with the classifier); chelsea top-5 {report['chelsea_top5'][v]}")
    print("\nforward ms per frame (median; wall / CPU)   " + "  ".join(f"{v:>13}" for v in args.variants)
          + "   ratio (wall, CPU)")
    for n, row in report["timings"].items():
        for key, label in (("render_cl", "256x448 channels-last"), ("render", "256x448 contiguous"),
                           ("crop", "128x128 crop")):
            vals = [row[key][v] for v in args.variants]
            ratio = (f"{vals[-1]['wall'] / vals[0]['wall']:.2f}x, {vals[-1]['cpu'] / vals[0]['cpu']:.2f}x"
                     if len(vals) > 1 else "")
            cells = "  ".join(f"{x['wall']:6.1f} /{x['cpu']:6.1f}" for x in vals)
            print(f"{label:<22} {n} thread{'s' if n > 1 else ' '}        {cells}   {ratio}")
    acc = report.get("imagenet_sample")
    if isinstance(acc, dict):
        print(f"\nImageNet sample ({acc['images']} photos, one per class): top-1 / top-5 %")
        for v in args.variants:
            a = acc[v]
            print(f"{v}: colour {a['colour_top1']} / {a['colour_top5']}   grey {a['grey_top1']} / {a['grey_top5']}"
                  f"   ({a['seconds']} s)")
    elif acc:
        print(f"\nImageNet sample: {acc}")
    print(f"\nload average after: {report['load_after']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
