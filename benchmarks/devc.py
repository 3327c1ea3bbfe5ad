"""Speed and memory of the official DEVC checkpoints at the official working size (216x384).

    python benchmarks/devc.py [--weights DIR] [--frames 8] [--threads 2] [--device cpu]

Without --weights it writes the fixture's recipe weights (tests/devc_recipe.py, numpy) to a
temporary folder: the same architecture and arithmetic as the official files, random values.
The model is pushed the official image_size picture (432x768 L) and runs its networks at 216x384,
as test.py does; the time includes the official post-processing (x2, x1.25, fast global smoother).
For scale: the unmodified official test.py took a median 1.61 s/frame on these 2-core machines
(see docs/devc.md).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from colorize.models import create_model  # noqa: E402
from colorize.models import devc as D  # noqa: E402
from colorize.models.devc_smoother import has_ximgproc  # noqa: E402

OFFICIAL_S_PER_FRAME = 1.61


def _scene(n: int, h: int, w: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth moving pattern: L frames (n, 1, h, w) 0..100 and a colour reference Lab (1, 3, h, w)."""
    g = torch.Generator().manual_seed(seed)
    base = F.interpolate(torch.rand(1, 3, h // 16, w // 16, generator=g), size=(h, w), mode="bicubic")
    frames = []
    for k in range(n):
        shifted = torch.roll(base, shifts=(k * 3, k * 5), dims=(2, 3))
        frames.append((shifted[:, :1] * 100).clamp(0, 100)[0])
    ref = torch.cat((base[:, :1] * 100, (base[:, 1:] - 0.5) * 120), 1).clamp(-110, 110)
    ref[:, :1] = ref[:, :1].clamp(0, 100)
    return torch.stack(frames), ref


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, default=None, help="folder with the three .pth files")
    ap.add_argument("--frames", type=int, default=8, help="timed frames (after 1 warm-up frame)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights
        if weights is None:
            from tests.devc_recipe import write_recipe_weights

            weights = write_recipe_weights(Path(tmp))
        rss0 = _rss_mb()
        opts = {} if args.batch_size is None else {"batch_size": args.batch_size}
        model = create_model("devc", device=args.device, weights=weights, **opts)
    rss_loaded = _rss_mb()
    l_frames, ref = _scene(args.frames + 1, 432, 768)
    model.set_reference(ref)

    times, cpu = [], []
    t_ref = time.perf_counter()
    model.push(0, l_frames[0])  # warm-up; includes the reference's features (once per reference)
    warm = time.perf_counter() - t_ref
    for k in range(1, args.frames + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        out = model.push(k, l_frames[k])
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        assert len(out) == model.batch_size or model.batch_size > 1
    out = model.flush()

    # one frame, stage by stage (same code paths as push)
    stages = {}
    with torch.inference_mode():
        l_c = l_frames[1:2].to(model.device) - 50
        ia_l = F.interpolate(l_c, size=(216, 384), mode="bilinear")
        ref_state = model._reference((216, 384))
        t = time.perf_counter(); feats = model.vgg(((ia_l + 50) / 100).expand(1, 3, 216, 384).to(model.dtype))
        stages["VGG19 (frame)"] = time.perf_counter() - t
        t = time.perf_counter(); fa = model.warpnet.features(*feats)
        stages["WarpNet (frame only)"] = time.perf_counter() - t
        t = time.perf_counter()
        theta = D.WarpNet.embed(model.warpnet.theta, fa).float()
        warped, sim = D.warp_reference(theta, ref_state["phi"], ref_state["pooled"])
        stages["correlation + warp"] = time.perf_counter() - t
        warped = F.interpolate(warped.transpose(1, 2).reshape(1, 3, 54, 96), scale_factor=4)
        sim = F.interpolate(sim.reshape(1, 1, 54, 96), scale_factor=4)
        t = time.perf_counter(); ab = model._colorize(ia_l, warped, sim, torch.zeros(1, 3, 216, 384))
        stages["ColorVidNet"] = time.perf_counter() - t
        t = time.perf_counter(); model._postprocess(ab, l_c)
        stages["x2, x1.25, smoother"] = time.perf_counter() - t

    med = statistics.median(times)
    print(f"device {args.device}, threads {args.threads}, dtype {model.dtype}, batch {model.batch_size}, "
          f"smoother {'opencv-contrib' if has_ximgproc() else 'numpy port'}")
    print("pushed 432x768 L; networks at 216x384 (the official working size)")
    print(f"first frame (incl. reference features): {warm:.2f} s")
    print(f"s/frame: median {med:.3f}, min {min(times):.3f}, max {max(times):.3f} "
          f"(process CPU median {statistics.median(cpu):.3f} s) over {len(times)} frames")
    print(f"official test.py median {OFFICIAL_S_PER_FRAME:.2f} s/frame -> speed-up x{OFFICIAL_S_PER_FRAME / med:.2f}")
    for name, s in stages.items():
        print(f"  {name:24s} {s:.3f} s")
    print(f"peak RSS: {_rss_mb():.0f} MB (after loading the weights {rss_loaded:.0f} MB; before {rss0:.0f} MB)")


if __name__ == "__main__":
    main()
