"""Speed and memory of the official DEVC checkpoints at the official working size (216x384).

    python benchmarks/devc.py [--weights DIR] [--frames 8] [--threads 2] [--device cpu]
                              [--precision fp32|fp16|bf16] [--batch-size N] [--baseline]

Without --weights it writes the fixture's recipe weights (tests/devc_recipe.py, numpy) to a
temporary folder: the same architecture and arithmetic as the official files, random values.
The model is pushed the official image_size picture (432x768 L) and runs its networks at 216x384,
as test.py does; the time includes the official post-processing (x2, x1.25, fast global smoother).

Same-machine baseline: the unmodified official test.py (commit 2c41bdf, recipe weights, 2 threads,
networks at 216x384), run alternately with this benchmark on one of our 2-core machines under the
same background load, took a median 9.80 and 9.85 s/frame against 6.42 and 6.55 s/frame here:
1.53x and 1.50x; on the idle machine 3.49 and 3.10 against 1.78 and 1.85 s/frame, 1.96x and
1.68x (docs/devc.md, section 6). ``--baseline`` times, interleaved with the model, an
emulation of that official per-frame work, so a ratio can be read off any machine.
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

from colorize.color.lab import lab_to_rgb  # noqa: E402
from colorize.models import create_model  # noqa: E402
from colorize.models import devc as D  # noqa: E402
from colorize.models.devc_smoother import has_ximgproc  # noqa: E402
from colorize.pipeline.device import compute_dtype  # noqa: E402

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


class OfficialEmulation:
    """The official per-frame work (test.py + frame_colorization) with the same networks, to time
    both under the same machine load. Every frame, as the official loop does: the reference's
    skimage-style rgb2lab at 432x768, x0.5, tensor_lab2rgb and VGG (to pool5); the frame's rgb2lab
    and VGG; WarpNet on frame AND reference; a dense N x N softmax; autograd enabled as in
    frame_colorization; x2 x1.25 + smoother; float64 lab2rgb to uint8. (Image decoding, JPEG and
    AVI writing, about 0.03 s/frame in the official run, are not included.) Not the official code:
    an estimate of its cost, used as a same-conditions baseline.
    """

    def __init__(self, model, ref_lab_large: torch.Tensor) -> None:
        import copy

        self.model = model
        self.vgg, self.warpnet, self.colornet = (copy.deepcopy(m).float().requires_grad_(True)
                                                 for m in (model.vgg, model.warpnet, model.colornet))
        lab = torch.cat((ref_lab_large[:, :1] + 50, ref_lab_large[:, 1:]), 1).double()
        self.ref_u8 = (lab_to_rgb(lab)[0] * 255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0)
        self.last = None

    def _reference(self):
        """The official loop redoes the reference's Lab, x0.5, tensor_lab2rgb and VGG every frame."""
        lab_large = D.official_rgb_to_lab(self.ref_u8)[None]
        lab_large[:, :1] -= 50
        ib_lab = F.interpolate(lab_large, scale_factor=0.5, mode="bilinear")
        rgb = D.tensor_lab2rgb(torch.cat((ib_lab[:, :1] + 50, ib_lab[:, 1:]), 1))
        return ib_lab, self._vgg_all(rgb)

    def _vgg_all(self, rgb):
        feats = self.vgg(rgb)
        x = F.max_pool2d(feats[3], 1)
        x = F.relu(self.vgg.conv5_4(F.relu(self.vgg.conv5_3(x))))  # computed, unused, as official
        F.max_pool2d(x, 2, 2)
        return feats

    def step(self, rgb_u8: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            lab_large = D.official_rgb_to_lab(rgb_u8)[None]
            lab_large[:, :1] -= 50
            ia = F.interpolate(lab_large, scale_factor=0.5, mode="bilinear")
            ia_l = ia[:, :1]
            ib_lab, feats_b = self._reference()
            feats_a = self._vgg_all(((ia_l + 50) / 100).expand(1, 3, *ia_l.shape[-2:]))
            if self.last is None:
                self.last = torch.zeros_like(ia)
            with torch.enable_grad():
                fa = self.warpnet.features(*feats_a)
                fb = self.warpnet.features(*feats_b)
                theta = D.WarpNet.embed(self.warpnet.theta, fa)
                phi = D.WarpNet.embed(self.warpnet.phi, fb)
                f = theta.transpose(1, 2) @ phi
                sim = f.max(-1)[0]
                attn = torch.softmax(f / D.TEMPERATURE, dim=-1)
                pooled = F.avg_pool2d(ib_lab, 4).flatten(2).transpose(1, 2)
                h4, w4 = ia_l.shape[-2] // 4, ia_l.shape[-1] // 4
                y = (attn @ pooled).transpose(1, 2).reshape(1, 3, h4, w4)
                y = F.interpolate(y, scale_factor=4)
                sim = F.interpolate(sim.reshape(1, 1, h4, w4), scale_factor=4)
                ab = self.colornet(torch.cat((ia_l, y[:, 1:3], sim, self.last), 1))
            self.last = torch.cat((ia_l, ab.detach()), 1)
            ab_f = self.model._postprocess(ab.detach(), lab_large[:, :1])
            return D.official_lab_to_rgb_u8(torch.cat((lab_large[:, :1] + 50, ab_f), 1))


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, default=None, help="folder with the three .pth files")
    ap.add_argument("--frames", type=int, default=8, help="timed frames (after 1 warm-up frame)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default="fp32",
                    help="network dtype (fp32 = the official arithmetic)")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--baseline", action="store_true",
                    help="also time an emulation of the official per-frame work, interleaved")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights
        if weights is None:
            from tests.devc_recipe import write_recipe_weights

            weights = write_recipe_weights(Path(tmp))
        rss0 = _rss_mb()
        opts = {} if args.batch_size is None else {"batch_size": args.batch_size}
        dtype = compute_dtype(torch.device(args.device), args.precision)
        model = create_model("devc", device=args.device, dtype=dtype, weights=weights, **opts)
    rss_loaded = _rss_mb()
    bs = model.batch_size
    l_frames, ref = _scene(args.frames + bs, 432, 768)
    model.set_reference(ref)

    times, cpu, base = [], [], []
    official = None
    if args.baseline:
        official = OfficialEmulation(model, ref - torch.tensor([50.0, 0, 0]).view(1, 3, 1, 1))
        grey = [(lab_to_rgb(torch.cat((l[None], torch.zeros(1, 2, 432, 768)), 1))[0] * 255).round()
                .to(torch.uint8).permute(1, 2, 0) for l in l_frames]
        official.step(grey[0])
    t_ref = time.perf_counter()
    for k in range(bs):  # warm-up: one batch, including the reference's features (once per reference)
        model.push(k, l_frames[k])
    warm = time.perf_counter() - t_ref
    # timed in blocks of one batch (a batch's frames come out together); per frame = block / batch
    for k0 in range(bs, bs + args.frames - args.frames % bs, bs):
        t0, c0 = time.perf_counter(), time.process_time()
        for k in range(k0, k0 + bs):
            model.push(k, l_frames[k])
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        times += [(time.perf_counter() - t0) / bs] * bs
        cpu += [(time.process_time() - c0) / bs] * bs
        for k in range(k0, k0 + bs):
            if official is not None:  # interleaved, so both see the same machine load
                t0 = time.perf_counter()
                official.step(grey[k])
                base.append(time.perf_counter() - t0)
    model.flush()

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
    print(f"first batch of {bs} (incl. reference features): {warm:.2f} s")
    print(f"s/frame: median {med:.3f}, min {min(times):.3f}, max {max(times):.3f} "
          f"(process CPU median {statistics.median(cpu):.3f} s) over {len(times)} frames")
    if base:
        print(f"official-work emulation, same run: median {statistics.median(base):.3f} s/frame -> "
              f"speed-up x{statistics.median(base) / med:.2f}")
    for name, s in stages.items():
        print(f"  {name:24s} {s:.3f} s")
    print(f"peak RSS: {_rss_mb():.0f} MB (after loading the weights {rss_loaded:.0f} MB; before {rss0:.0f} MB)")


if __name__ == "__main__":
    main()
