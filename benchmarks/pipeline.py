"""Pipeline speed and memory: how much the tool around the model costs.

Prints, for a synthetic clip (the example landscape, scaled to ``--size``, with an AAC track):

* decode fps                       iter_frames alone (PyAV decode + RGB conversion)
* decode+encode fps                decode, L, neutral chroma merge, H.264 encode, audio copy
* end-to-end fps                   the real runner with a real model (needs weights: shipped, or
                                   ``--weights``)
* end-to-end / model-only time     the same frames pushed straight into the model from memory;
                                   goal <= 1.1 (decode, upsampling and encode hidden behind compute)
* peak RSS, input and 10x longer   each run in a fresh subprocess; goal ratio <= 1.1 (flat memory)

Usage::

    python benchmarks/pipeline.py                       # 854x480, 48 frames, default model
    python benchmarks/pipeline.py --model lstm --weights /path/lstm.pt --frames 64 --json

Numbers depend on the machine and on what else runs on it; the script prints its settings.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from film import write_grey_film  # benchmarks/film.py, beside this script

ROOT = Path(__file__).resolve().parent.parent


def _example_module():
    spec = importlib.util.spec_from_file_location("make_examples", ROOT / "examples" / "make_examples.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def make_input(path: Path, frames: int, width: int, height: int, fps: int = 25) -> Path:
    """The example clip's frames (black and white photographs, two shots), scaled to width x height,
    + audio."""
    import cv2

    ex = _example_module()
    cache: dict[int, np.ndarray] = {}
    period = ex.FRAMES  # loop the example's two shots

    def lumas():
        for i in range(frames):
            k = i % period
            if k not in cache:
                grey = ex._luma(ex.frame_rgb(k)).clip(0, 1)
                cache[k] = cv2.resize((16 + grey * 219).astype(np.float32), (width, height),
                                      interpolation=cv2.INTER_CUBIC).round().clip(0, 255).astype(np.uint8)
            yield cache[k]

    write_grey_film(path, lumas(), frames, width, height, fps, {"crf": "18", "preset": "veryfast"})
    return path


def bench_decode(path: Path) -> dict:
    from colorize.io import iter_frames, probe

    info = probe(path)
    t0 = time.perf_counter()
    n = sum(1 for _ in iter_frames(path, info))
    dt = time.perf_counter() - t0
    return {"frames": n, "seconds": dt, "fps": n / dt}


def bench_decode_encode(path: Path, out_dir: Path) -> dict:
    from colorize.color.merge import full_l
    from colorize.io import EncodeOptions, MediaWriter, iter_frames, probe

    info = probe(path)
    t0 = time.perf_counter()
    n = 0
    with MediaWriter(out_dir / "decode_encode.mp4", info, EncodeOptions()) as w:
        zeros = None
        for src in iter_frames(path, info):
            if zeros is None:
                zeros = np.zeros((*src.rgb.shape[:2], 2), np.float32)
            w.write(src, zeros, full_l(src.rgb)[0].numpy())
            n += 1
    dt = time.perf_counter() - t0
    return {"frames": n, "seconds": dt, "fps": n / dt}


def _config(args):
    from colorize.pipeline.config import RunConfig

    return RunConfig(model=args.model, weights=Path(args.weights) if args.weights else None,
                     device=args.device, render_size=args.render_size, overwrite=True,
                     references=tuple(args.ref or ()))


def model_available(args) -> tuple[bool, str]:
    from colorize.pipeline.runner import Runner

    try:
        Runner(_config(args)).build()
    except Exception as exc:  # noqa: BLE001 - reported, the benchmark goes on without a model
        return False, str(exc).splitlines()[0]
    return True, "ok"


def bench_end_to_end(path: Path, out_dir: Path, args) -> dict:
    """Runner over the file, then the same frames pushed into the model straight from memory."""
    import torch

    from colorize.color.merge import rgb_to_work_l
    from colorize.io import iter_frames, probe
    from colorize.pipeline.inputs import Job
    from colorize.pipeline.runner import Runner, working_size

    runner = Runner(_config(args))
    if runner.device.type == "cpu":
        from colorize.pipeline.device import cpu_threads

        torch.set_num_threads(cpu_threads())
    runner.build()
    model = runner.model
    info = probe(path)
    hw = working_size(info.width, info.height, info.sar, runner.render_size, model.size_multiple)
    ls = [rgb_to_work_l(src.rgb, hw).to(runner.device) for src in iter_frames(path, info)]

    def model_only(warmup: bool = False) -> float:
        model.reset()
        if runner.references:
            model.set_reference(runner.references[0].lab.to(runner.device))
        t0 = time.perf_counter()
        with torch.inference_mode():
            for i, l in enumerate(ls[:3] if warmup else ls):
                for _, ab in model.push(i, l):
                    ab.cpu()  # wait for the device
            for _, ab in model.flush():
                ab.cpu()
        return time.perf_counter() - t0

    model_only(warmup=True)  # allocator, kernels, caches
    # Model-only before and after the end-to-end run, averaged: on a shared machine the load drifts.
    t_before = model_only()
    job = Job(path, out_dir / "end_to_end.mp4", info)
    t0, c0 = time.perf_counter(), time.process_time()
    [res] = list(runner.run([job]))
    t_e2e, cpu_e2e = time.perf_counter() - t0, time.process_time() - c0
    t_after = model_only()
    t_model = 0.5 * (t_before + t_after)
    if res.status != "done":
        raise RuntimeError(res.error)
    return {
        "frames": res.frames, "seconds": t_e2e, "fps": res.frames / t_e2e,
        # CPU time of all threads per frame: the work itself, which the host's load changes far
        # less than the wall-clock rate (on 2 cores the rate is at most 2000 / this, per second).
        "cpu_ms_per_frame": 1000 * cpu_e2e / res.frames,
        "model_only_seconds": t_model, "model_only_fps": len(ls) / t_model,
        "model_only_seconds_before_after": [t_before, t_after],
        "ratio_end_to_end_over_model": t_e2e / t_model,
        "working_size": list(hw), "device": str(runner.device), "model": args.model,
        "weights_sha256": res.weights_sha256,
    }


def child_rss(path: Path, out_dir: Path, args) -> dict:
    """One run of the real runner (or decode+encode without a model); report peak RSS."""
    from colorize.io import probe
    from colorize.pipeline.inputs import Job
    from colorize.pipeline.runner import Runner

    use_model = not args.no_model and model_available(args)[0]
    if use_model:
        runner = Runner(_config(args))
        if runner.device.type == "cpu":
            import torch

            from colorize.pipeline.device import cpu_threads

            torch.set_num_threads(cpu_threads())
        [res] = list(runner.run([Job(path, out_dir / "rss.mp4", probe(path))]))
        if res.status != "done":
            raise RuntimeError(res.error)
        frames = res.frames
    else:
        frames = bench_decode_encode(path, out_dir)["frames"]
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"peak_rss_mb": rss_kb / 1024.0, "frames": frames, "with_model": use_model}


def rss_pair(tmp: Path, args) -> dict:
    out = {}
    for label, frames in (("short", args.rss_frames), ("long_10x", args.rss_frames * 10)):
        size = args.rss_size or args.size
        clip = make_input(tmp / f"rss_{frames}.mp4", frames, *size)
        cmd = [sys.executable, __file__, "--child-rss", str(clip), "--model", args.model, "--device", args.device]
        for flag, value in (("--weights", args.weights), ("--render-size", args.render_size)):
            if value is not None:
                cmd += [flag, str(value)]
        for r in args.ref or ():
            cmd += ["--ref", r]
        if args.no_model:
            cmd.append("--no-model")
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0:
            raise RuntimeError(f"RSS child failed: {proc.stderr.strip().splitlines()[-1:]}")
        out[label] = json.loads(proc.stdout.strip().splitlines()[-1])
    out["ratio"] = out["long_10x"]["peak_rss_mb"] / out["short"]["peak_rss_mb"]
    out["size"] = list(args.rss_size or args.size)
    return out


def _size(text: str) -> tuple[int, int]:
    w, h = text.lower().split("x")
    return int(w), int(h)


def main() -> None:
    from colorize.pipeline.config import DEFAULT_AUTO_MODEL

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=_size, default=(854, 480), help="input frame size WxH (default 854x480)")
    ap.add_argument("--frames", type=int, default=48, help="frames in the speed input")
    ap.add_argument("--model", default=DEFAULT_AUTO_MODEL)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--ref", action="append", help="reference still(s) for exemplar models")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--render-size", type=int, default=None)
    ap.add_argument("--rss-frames", type=int, default=30, help="frames of the short RSS input (long = 10x)")
    ap.add_argument("--rss-size", type=_size, default=None, help="frame size of the RSS inputs (default --size)")
    ap.add_argument("--skip-rss", action="store_true")
    ap.add_argument("--no-model", action="store_true", help="measure I/O only")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child-rss", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child_rss is not None:
        with tempfile.TemporaryDirectory() as d:
            print(json.dumps(child_rss(args.child_rss, Path(d), args)))
        return

    report: dict = {"settings": {"size": list(args.size), "frames": args.frames, "model": args.model,
                                 "weights": args.weights, "device": args.device, "render_size": args.render_size,
                                 "cpu_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()}}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        clip = make_input(tmp / "input.mp4", args.frames, *args.size)
        report["decode"] = bench_decode(clip)
        report["decode_encode"] = bench_decode_encode(clip, tmp)
        ok, why = (False, "--no-model") if args.no_model else model_available(args)
        report["end_to_end"] = bench_end_to_end(clip, tmp, args) if ok else {"skipped": why}
        if not args.skip_rss:
            report["rss"] = rss_pair(tmp, args)

    if args.json:
        print(json.dumps(report, indent=2))
        return
    s = report["settings"]
    print(f"input {s['size'][0]}x{s['size'][1]}, {s['frames']} frames, model {s['model']}, device {s['device']}, "
          f"{s['cpu_cores']} CPU cores")
    print(f"decode                 {report['decode']['fps']:8.1f} fps")
    print(f"decode+encode          {report['decode_encode']['fps']:8.1f} fps")
    e = report["end_to_end"]
    if "skipped" in e:
        print(f"end-to-end             skipped: {e['skipped']}")
    else:
        print(f"end-to-end             {e['fps']:8.2f} fps  (working size {e['working_size'][1]}x{e['working_size'][0]})")
        print(f"end-to-end CPU time    {e['cpu_ms_per_frame']:8.1f} ms/frame (all threads)")
        print(f"model only             {e['model_only_fps']:8.2f} fps")
        print(f"end-to-end / model     {e['ratio_end_to_end_over_model']:8.3f}   (goal <= 1.1)")
    if "rss" in report:
        r = report["rss"]
        what = "end to end" if r["short"]["with_model"] else "decode+encode"
        print(f"peak RSS ({what}, {r['size'][0]}x{r['size'][1]})  {r['short']['frames']} frames: {r['short']['peak_rss_mb']:.0f} MB, "
              f"{r['long_10x']['frames']} frames: {r['long_10x']['peak_rss_mb']:.0f} MB, "
              f"ratio {r['ratio']:.3f}   (goal <= 1.1)")


if __name__ == "__main__":
    main()
