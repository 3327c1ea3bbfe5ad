"""Speed and size of every registered model, through the stream interface, on this machine.

    python benchmarks/models.py                      # every model that builds, shipped weights
    python benchmarks/models.py --random-init        # also models without weights (speed only)
    python benchmarks/models.py --models lstm selfreg --weights lstm=/tmp/run/lstm.pt --json

For each model: steady-state frames/second at 854x480 input, timing exactly the model's share of
the pipeline — L resized area-wise to the model's default render size, ``push`` (and the frames it
returns), ab upsampled to 854x480 and gamut-limited with :func:`colorize.color.gamut.finish_ab` — after a
warm-up long enough to fill any look-back window or look-ahead. Decoding, encoding and the Lab → RGB
merge are not counted (the same definition as ``colorize eval``'s fps). Parameter counts: the
model's own (trained) parameters, and the total including the frozen backbone.

A model that cannot be built (no shipped weights, official checkpoints not installed, not written
yet) is listed with the reason. ``--random-init`` builds such models with their initial weights by
bypassing the weights loader: valid for speed and size, meaningless for quality, and marked so.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import platform
import sys
import time
from pathlib import Path
from unittest import mock

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from colorize.color.lab import rgb_to_lab  # noqa: E402
from colorize.color.gamut import finish_ab  # noqa: E402
from colorize.evaluation.runner import render_shape, resize  # noqa: E402
from colorize.models import registry  # noqa: E402
from colorize.models.backbone import FrozenBackbone  # noqa: E402
from colorize.models.base import StreamColorizer  # noqa: E402

WIDTH, HEIGHT = 854, 480
# Extra configurations worth a row of their own (the registered defaults always get one).
VARIANTS: dict[str, list[dict]] = {
    "selfreg": [{"diverse": 1, "refine_passes": 1}, {"diverse": 1, "refine_passes": 0}],
}


def synthetic_frames(n: int, width: int = WIDTH, height: int = HEIGHT) -> list[torch.Tensor]:
    """``n`` colour frames as Lab (1, 3, H, W): smooth texture panning 3 px per frame."""
    g = torch.Generator().manual_seed(0)
    base = torch.rand(1, 3, height // 16, (width + 3 * n) // 16 + 2, generator=g)
    base = F.interpolate(base, scale_factor=16, mode="bicubic", align_corners=False).clamp(0, 1)
    return [rgb_to_lab(base[..., :, 3 * i : 3 * i + width].contiguous()) for i in range(n)]


def count_parameters(model: StreamColorizer) -> tuple[int, int]:
    """(own, total): parameters of the model's networks, without / with the frozen backbone."""
    seen: dict[int, nn.Parameter] = {}
    frozen: set[int] = set()
    for value in vars(model).values():
        if isinstance(value, nn.Module):
            for p in value.parameters():
                seen[id(p)] = p
            for m in value.modules():
                if isinstance(m, FrozenBackbone):
                    frozen.update(id(p) for p in m.parameters())
    total = sum(p.numel() for p in seen.values())
    own = sum(p.numel() for k, p in seen.items() if k not in frozen)
    return own, total


@contextlib.contextmanager
def random_init(name: str):
    """Build ``name`` with its initial weights: the family module's loader names become no-ops."""
    module = sys.modules[registry._REGISTRY[name].builder.__module__]  # the family that registered it
    patches = [
        mock.patch.object(module, "load_weights", lambda name, weights, net, key_filter=None: None, create=False),
        mock.patch.object(module, "resolve_weights", lambda n, w: (Path(f"<random {n}>"), None), create=False),
        mock.patch.object(module, "load_state", lambda path, sha: ({}, None), create=False),
        mock.patch.object(module, "load_into", lambda net, state, path: None, create=False),
    ]
    with contextlib.ExitStack() as stack:
        for p in patches:
            if hasattr(module, p.attribute):
                stack.enter_context(p)
        yield


def build(name: str, options: dict, weights: str | None, allow_random: bool) -> tuple[StreamColorizer, str]:
    try:
        return registry.create_model(name, device="cpu", weights=weights, **options), "shipped" if weights is None else "given"
    except registry.WeightsError:
        if not allow_random:
            raise
    with random_init(name):
        return registry.create_model(name, device="cpu", **options), "random init"


def time_model(model: StreamColorizer, frames: list[torch.Tensor], warmup: int) -> float:
    """Steady-state frames/second over ``frames[warmup:]`` (frames emitted per second of work)."""
    info = model.info
    h, w = render_shape(HEIGHT, WIDTH, info.default_render_size, info.size_multiple)
    if info.needs_reference:
        ref = frames[0]
        short = info.default_render_size
        f = short / min(ref.shape[-2:])
        model.set_reference(resize(ref, (round(ref.shape[-2] * f), round(ref.shape[-1] * f))).contiguous())
    model.reset()
    emitted = 0
    start = None
    with torch.no_grad():  # not inference_mode: models may cache on tensor versions
        for i, lab in enumerate(frames):
            if i == warmup:
                emitted, start = 0, time.perf_counter()
            l_full = lab[:, :1]
            ready = model.push(i, resize(l_full, (h, w))[0])
            for _, ab in ready:
                finish_ab(ab[:1].float(), l_full)
            emitted += len(ready)
        elapsed = time.perf_counter() - start
    model.flush()
    model.reset()
    return emitted / elapsed if elapsed > 0 and emitted else math.nan


def _load() -> str:
    try:
        import os

        return "%.1f" % os.getloadavg()[0]  # other work on the machine skews every figure
    except (OSError, AttributeError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="*", help="model names (default: every registered model)")
    ap.add_argument("--weights", action="append", default=[], metavar="NAME=PATH", help="weights for a model")
    ap.add_argument("--random-init", action="store_true", help="benchmark models without weights (speed only)")
    ap.add_argument("--frames", type=int, default=24, help="timed frames per model")
    ap.add_argument("--warmup", type=int, default=8, help="untimed frames first (fills windows and look-ahead)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    weights = dict(w.split("=", 1) for w in args.weights)
    names = args.models or registry.list_models()
    frames = synthetic_frames(args.warmup + args.frames)

    rows = []
    for name in names:
        for options in VARIANTS.get(name, [{}]):
            label = name + ("" if not options else " (" + ", ".join(f"{k}={v}" for k, v in options.items()) + ")")
            row = {"model": label, "fps": None, "own_params": None, "total_params": None, "weights": None, "note": ""}
            try:
                model, source = build(name, options, weights.get(name), args.random_init)
                row["weights"] = source
                row["own_params"], row["total_params"] = count_parameters(model)
                info = model.info
                row["render"] = "x".join(map(str, render_shape(HEIGHT, WIDTH, info.default_render_size, info.size_multiple)[::-1]))
                row["fps"] = time_model(model, frames, args.warmup)
                del model
            except Exception as exc:  # a benchmark lists every model, whatever breaks one of them
                row["note"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:100]
            rows.append(row)

    if args.json:
        print(json.dumps({"input": f"{WIDTH}x{HEIGHT}", "threads": torch.get_num_threads(), "load_average": _load(),
                          "rows": rows}, indent=2))
        return 0
    print(f"{WIDTH}x{HEIGHT} input, CPU: {platform.processor() or platform.machine()}, "
          f"torch {torch.__version__}, torch threads: {torch.get_num_threads()}, "
          f"{args.frames} timed frames after {args.warmup} warm-up, load average {_load()}")
    head = ("model", "render", "fps", "ms/frame", "own params", "total params", "weights", "note")
    table = [
        (
            r["model"],
            r.get("render", "-"),
            f"{r['fps']:.2f}" if r["fps"] else "-",
            f"{1000 / r['fps']:.0f}" if r["fps"] else "-",
            f"{r['own_params']:,}" if r["own_params"] is not None else "-",
            f"{r['total_params']:,}" if r["total_params"] is not None else "-",
            r["weights"] or "-",
            r["note"],
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(t[i]) for t in table)) if table else len(h) for i, h in enumerate(head)]
    for line in (head, tuple("-" * w for w in widths), *table):
        print("  ".join(c.ljust(w) if i in (0, 1, 6, 7) else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
