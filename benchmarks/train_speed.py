"""Training steps per second: with and without the feature cache, fp32 and bf16, same batch.

    python benchmarks/train_speed.py --data DIR [--data DIR ...] [--model selfreg] [--batch 6]
        [--size 128] [--steps 30] [--threads 1] [--set NAME=VALUE ...]

Builds a small feature cache (``--cache-samples``, default 256) in a temporary folder, then times
``--steps`` optimisation steps (after 3 warm-up steps) of the model family in each mode, with the
data drawn by the trainer's own samplers in the same thread (so the data cost is counted too; the
trainer overlaps it with the step in a second thread). Prints one line per mode and the speed-ups.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from colorize.models.backbone import FrozenBackbone, load_pretrained_backbone  # noqa: E402
from colorize.training.data import DataConfig, build_samplers  # noqa: E402
from colorize.training.feature_cache import CachedSampler, FeatureCache, cache_spec  # noqa: E402
from colorize.training.trainer import load_family, with_overrides  # noqa: E402


def time_steps(family, sampler, backbone, batch: int, steps: int, bf16: bool) -> tuple[float, float]:
    """(steps per second including data, steps per second of the step alone)."""
    torch.manual_seed(0)
    net = family.build_net().train()
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-4)
    total = compute = 0.0
    for i in range(steps + 3):
        t0 = time.perf_counter()
        b = sampler.batch(i, batch)
        t1 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = family.training_step(net, b, backbone, i)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        t2 = time.perf_counter()
        if i >= 3:
            total += t2 - t0
            compute += t2 - t1
    return steps / total, steps / compute


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", action="append", required=True, type=Path)
    ap.add_argument("--model", default="selfreg")
    ap.add_argument("--batch", type=int, default=6)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache-samples", type=int, default=256)
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                    help="a family setting, as in colorize train --set (e.g. classes=1)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    family = with_overrides(load_family(args.model), dict(o.split("=", 1) for o in args.overrides))
    backbone = FrozenBackbone(load_pretrained_backbone())
    train, _ = build_samplers(args.data, DataConfig(size=args.size, window=family.window), seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        cache = FeatureCache.build(tmp, train, backbone, cache_spec(family), args.cache_samples, {"bench": 1})
        build = time.perf_counter() - t0
        cached = CachedSampler(cache)
        rows = {}
        for name, sampler, bf16 in (("uncached fp32", train, False), ("uncached bf16", train, True),
                                    ("cached fp32", cached, False), ("cached bf16", cached, True)):
            rows[name] = time_steps(family, sampler, backbone, args.batch, args.steps, bf16)
            print(f"{args.model} {name:14s} batch {args.batch} @ {args.size}px, {args.threads} thread(s): "
                  f"{rows[name][0]:.2f} steps/s with data ({rows[name][1]:.2f} step alone)", flush=True)
    base = rows["uncached fp32"][0]
    print(f"cache build: {args.cache_samples / build:.1f} samples/s; speed-up over uncached fp32: "
          + ", ".join(f"{k} {v[0] / base:.2f}x" for k, v in rows.items()))


if __name__ == "__main__":
    main()
