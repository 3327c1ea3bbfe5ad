"""Segments: what they cost, what a resume saves, and whether a seam shows.

Prints, for a synthetic film (the example photos panned, one shot each, with an AAC track):

* overhead (``--repeats N``)               alternating runs of the same command with
                                           ``--segment-frames 0`` and with segments: median wall-time
                                           overhead, and the overhead accounted for by what segments
                                           add (planning pass, join, warm-up and look-ahead frames);
                                           goal <= 3 %
* kill -9 half-way, then the same command  the re-run's wall time against an uninterrupted run
                                           (goal: clearly less), and the re-run's output against the
                                           uninterrupted segmented one: frame count, every pts, the
                                           audio packets and the decoded frames (goal: identical)
* seam                                     per model, lossless (FFV1) output of a one-shot film cut
                                           into segments that start inside the shot, against the
                                           one-piece run: mean |Cb/Cr difference| on the first frames
                                           of those segments, next to the one-piece run's own
                                           frame-to-frame colour change (goal: seam <= the smallest)

Every run is the real command line in a fresh process, with ``--threads`` fixed (bit-identical
results need the same thread count). Usage::

    python benchmarks/segments.py                              # 600 frames 854x480, selfreg
    python benchmarks/segments.py --frames 300 --segment-frames 2000 --repeats 3 --skip-resume --seam-models ""

Numbers depend on the machine and on what else runs on it; the script prints its settings.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
from film import write_grey_film  # benchmarks/film.py, beside this script

ROOT = Path(__file__).resolve().parent.parent


def make_film(path: Path, frames: int, width: int, height: int, shot_frames: int, fps: int = 25) -> Path:
    """Grey film: each shot a slow pan over one of the example photos; a 440 Hz AAC track."""
    import cv2

    sources = [cv2.imread(str(ROOT / "examples" / n), cv2.IMREAD_GRAYSCALE) for n in ("photo.jpg", "still.jpg")]

    def lumas():
        for i in range(frames):
            shot, t = divmod(i, shot_frames)
            img = sources[shot % len(sources)]
            h, w = img.shape
            zoom = 0.6 + 0.1 * (shot % 3)
            ch, cw = int(h * zoom), int(w * zoom)
            x0 = int((w - cw) * (t / max(1, shot_frames - 1)))
            y0 = int((h - ch) * (0.5 + 0.4 * np.sin(t / 40 + shot)) / 1)
            y0 = max(0, min(h - ch, y0))
            grey = cv2.resize(img[y0:y0 + ch, x0:x0 + cw], (width, height), interpolation=cv2.INTER_AREA)
            yield (16 + grey.astype(np.float32) * 219 / 255).astype(np.uint8)

    write_grey_film(path, lumas(), frames, width, height, fps, {"crf": "18", "preset": "fast"}, layout="stereo")
    return path


def colorize_cmd(src: Path, out: Path, args, *extra) -> list[str]:
    return [sys.executable, "-m", "colorize", str(src), "-o", str(out), "-q", "--device", "cpu",
            "--threads", str(args.threads), "--model", args.model, *map(str, extra)]


CPU_S: list[float] = []  # CPU seconds (user + system) of each timed run, in order


def timed(cmd: list[str]) -> float:
    """Wall seconds of ``cmd``; its CPU seconds go to CPU_S (less disturbed than wall time by other
    jobs on a shared machine)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU_S.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return time.perf_counter() - t0


def read(path: Path):
    """(pts list, planes per frame, audio packets)."""
    with av.open(str(path)) as c:
        pts, planes = [], []
        for f in c.decode(video=0):
            pts.append(f.pts * f.time_base)
            planes.append([np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width].copy()
                           for p in f.planes])
    with av.open(str(path)) as c:
        audio = [(p.pts, bytes(p)) for p in c.demux(audio=0) if p.size]
    return pts, planes, audio


def max_diff(a, b, planes=(0, 1, 2)) -> int:
    return max(int(np.abs(x[k].astype(int) - y[k].astype(int)).max()) for x, y in zip(a, b) for k in planes)


def kill_half_way(cmd: list[str], out: Path, segments: int) -> float:
    """Start ``cmd``, SIGKILL it once half the segments are journalled; returns seconds it ran."""
    journal = out.parent / f".{out.name}.parts" / "journal.json"
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while proc.poll() is None:
        try:
            done = len(json.loads(journal.read_text())["parts"])
        except (OSError, ValueError, KeyError):
            done = 0
        if done >= segments // 2:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return time.perf_counter() - t0
        time.sleep(0.05)
    raise SystemExit("the run finished before it could be killed")


def seam(args, folder: Path, model: str) -> dict:
    """Lossless one-shot film, one-piece vs segments of ``--seam-segment`` frames."""
    src = folder / "seam_src.mp4"
    if not src.exists():
        make_film(src, args.seam_frames, args.seam_width, args.seam_height, shot_frames=args.seam_frames)
    outs = {}
    for n in (0, args.seam_segment):
        out = folder / f"seam_{model}_{n}.mkv"
        cmd = [sys.executable, "-m", "colorize", str(src), "-o", str(out), "-q", "--device", "cpu", "--threads",
               str(args.threads), "--codec", "ffv1", "--segment-frames", str(n), "--overwrite"]
        if model == "exemplar":
            cmd += ["--ref", str(ROOT / "examples" / "still.jpg")]
        else:
            cmd += ["--model", model]
        timed(cmd)
        outs[n] = read(out)[1]
    one, seg = outs[0], outs[args.seam_segment]

    def chroma_mad(a, b) -> float:
        return float(np.mean([np.abs(a[k].astype(np.float32) - b[k].astype(np.float32)).mean() for k in (1, 2)]))

    starts = list(range(args.seam_segment, args.seam_frames, args.seam_segment))
    seams = [chroma_mad(one[s + d], seg[s + d]) for s in starts for d in (0, 1) if s + d < len(one)]
    steps = [chroma_mad(one[t], one[t - 1]) for t in range(1, len(one))]
    return {"model": model, "boundaries": starts, "seam_max": round(max(seams), 4),
            "seam_mean": round(float(np.mean(seams)), 4), "max_diff_levels": max_diff(one, seg, (1, 2)),
            "frame_step_min": round(min(steps), 4), "frame_step_median": round(float(np.median(steps)), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--size", default="854x480")
    ap.add_argument("--shot-frames", type=int, default=150, help="frames per shot of the film")
    ap.add_argument("--segment-frames", type=int, default=100)
    ap.add_argument("--model", default="selfreg")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seam-models", default="selfreg,lstm,exemplar")
    ap.add_argument("--seam-frames", type=int, default=96)
    ap.add_argument("--seam-segment", type=int, default=32)
    ap.add_argument("--seam-width", type=int, default=426)
    ap.add_argument("--seam-height", type=int, default=240)
    ap.add_argument("--skip-resume", action="store_true")
    ap.add_argument("--repeats", type=int, default=0,
                    help="alternating one-piece/segmented pairs for the overhead (0: none)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    width, height = map(int, args.size.split("x"))
    report: dict = {"settings": {k: v for k, v in vars(args).items() if k != "json"}}
    with tempfile.TemporaryDirectory(prefix="colorize-segments-") as tmp:
        folder = Path(tmp)
        src = make_film(folder / "film.mp4", args.frames, width, height, args.shot_frames)
        if args.repeats:
            # Alternating pairs, so the machine's drift (other jobs) hits both sides alike.
            pairs, cpu = [], []
            for _ in range(args.repeats):
                t_one = timed(colorize_cmd(src, folder / "one.mp4", args, "--segment-frames", 0, "--overwrite"))
                t_seg = timed(colorize_cmd(src, folder / "seg.mp4", args, "--segment-frames", args.segment_frames,
                                           "--overwrite"))
                pairs.append((t_one, t_seg))
                cpu.append((CPU_S[-2], CPU_S[-1]))
            cpu_one, cpu_seg = sorted(c[0] for c in cpu), sorted(c[1] for c in cpu)
            side = json.loads((folder / "seg.mp4.colorize.json").read_text())
            one_side = json.loads((folder / "one.mp4.colorize.json").read_text())
            ones, segs = sorted(p[0] for p in pairs), sorted(p[1] for p in pairs)
            med_one, med_seg = ones[len(ones) // 2], segs[len(segs) // 2]
            per_frame = one_side["timings"]["model_s"] / args.frames
            extra = side["segments"]["extra_model_frames"]
            accounted = side["timings"]["scan_s"] + side["timings"]["join_s"] + extra * per_frame
            report["overhead"] = {
                "pairs_s": [[round(a, 2), round(b, 2)] for a, b in pairs],
                "one_piece_median_s": round(med_one, 2), "segmented_median_s": round(med_seg, 2),
                "overhead_pct_wall": round(100 * (med_seg - med_one) / med_one, 2),
                "cpu_pairs_s": [[round(a, 2), round(b, 2)] for a, b in cpu],
                "overhead_pct_cpu": round(100 * (cpu_seg[len(cpu) // 2] - cpu_one[len(cpu) // 2])
                                          / cpu_one[len(cpu) // 2], 2),
                "segments": side["segments"]["count"], "scan_s": side["timings"]["scan_s"],
                "join_s": side["timings"]["join_s"], "extra_model_frames": extra,
                "overhead_pct_accounted": round(100 * accounted / one_side["timings"]["total_s"], 2),
            }
        if not args.skip_resume:
            seg_opt = ("--segment-frames", args.segment_frames)
            t_seg = timed(colorize_cmd(src, folder / "seg.mp4", args, *seg_opt, "--overwrite"))
            if not (folder / "one.mp4").exists():
                timed(colorize_cmd(src, folder / "one.mp4", args, "--segment-frames", 0))
            side = json.loads((folder / "seg.mp4.colorize.json").read_text())
            segments = side["segments"]["count"]
            cmd = colorize_cmd(src, folder / "res.mp4", args, *seg_opt)
            t_killed = kill_half_way(cmd, folder / "res.mp4", segments)
            t_resume = timed(cmd)
            one, seg, res = read(folder / "one.mp4"), read(folder / "seg.mp4"), read(folder / "res.mp4")
            report["resume"] = {
                "segments": segments, "killed_after_s": round(t_killed, 2), "resumed_run_s": round(t_resume, 2),
                "uninterrupted_s": round(t_seg, 2), "resumed_over_full": round(t_resume / t_seg, 3),
                "frames": [len(one[0]), len(seg[0]), len(res[0])],
                "pts_equal": one[0] == seg[0] == res[0],
                "audio_packets_equal": one[2] == seg[2] == res[2],
                "audio_packets": len(res[2]),
                "decoded_frames_identical_to_uninterrupted": max_diff(seg[1], res[1]) == 0,
                "max_diff_vs_one_piece_levels": max_diff(one[1], seg[1]),
            }
        report["seam"] = [seam(args, folder, m) for m in args.seam_models.split(",") if m]
    if args.json:
        print(json.dumps(report, indent=1))
        return
    print(f"settings: {report['settings']}")
    if "overhead" in report:
        o = report["overhead"]
        print(f"one-piece vs segmented ({o['segments']} segments), alternating pairs {o['pairs_s']} s: median "
              f"overhead {o['overhead_pct_wall']} % of wall time, {o['overhead_pct_cpu']} % of CPU time {o['cpu_pairs_s']}; accounted (scan {o['scan_s']} s + join "
              f"{o['join_s']} s + {o['extra_model_frames']} warm-up/look-ahead frames) {o['overhead_pct_accounted']} %")
    if "resume" in report:
        r = report["resume"]
        print(f"kill -9 after {r['killed_after_s']} s ({r['segments']} segments), same command again: "
              f"{r['resumed_run_s']} s ({100 * r['resumed_over_full']:.0f} % of an uninterrupted {r['uninterrupted_s']} s)")
        print(f"frames {r['frames']}, pts equal {r['pts_equal']}, audio packets equal {r['audio_packets_equal']} "
              f"({r['audio_packets']}), decoded frames identical to the uninterrupted run "
              f"{r['decoded_frames_identical_to_uninterrupted']}; vs one piece (separate encodes): max "
              f"{r['max_diff_vs_one_piece_levels']} levels")
    for s in report["seam"]:
        print(f"seam {s['model']}: mean |dCbCr| at segment starts {s['seam_mean']} (max {s['seam_max']}, "
              f"max pixel {s['max_diff_levels']} levels); one-piece frame-to-frame change min "
              f"{s['frame_step_min']}, median {s['frame_step_median']}")


if __name__ == "__main__":
    main()
