"""Evaluation results: per-clip figures, the report, its table, JSON and per-frame CSV."""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

TIME_BUCKETS = (0, 1, 10, 25, 50, 100)  # frame-index ranges for the PSNR-over-time summary


def _ratio(num: float, den: float) -> float:
    if math.isnan(num) or math.isnan(den):
        return math.nan
    if den > 0:
        return num / den
    return 1.0 if num == 0 else math.inf


def _finite_or_none(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


@dataclass
class ClipResult:
    """Metrics of one clip. ``*_per_frame`` lists hold one value per decoded frame, in order."""

    name: str
    frames: int  # frames colourized
    scored_frames: int  # frames in the means (all but the reference frame in first-frame mode)
    width: int
    height: int
    render_width: int
    render_height: int
    psnr_output: float
    psnr_grey: float
    colourfulness_output: float
    colourfulness_original: float
    flicker_output: float  # mean ab warp error
    flicker_original: float
    chroma_output: float  # mean |ab| over the same pixels as the warp error
    chroma_original: float
    accuracy: float
    fps: float
    # Mean chroma |ab| of the pixels with L < 10 (output as written, and the original); NaN when
    # a clip has no such pixel.
    dark_cast_output: float = math.nan
    dark_cast_original: float = math.nan
    dark_pixels: int = 0
    reference_distance_output: float | None = None
    reference_distance_original: float | None = None
    psnr_per_frame: list[float] = field(default_factory=list)
    psnr_grey_per_frame: list[float] = field(default_factory=list)

    @property
    def psnr_gain(self) -> float:
        return self.psnr_output - self.psnr_grey

    @property
    def colourfulness_ratio(self) -> float:
        return _ratio(self.colourfulness_output, self.colourfulness_original)

    @property
    def flicker_ratio(self) -> float:
        return _ratio(self.flicker_output, self.flicker_original)

    @property
    def flicker_ratio_relative(self) -> float:
        """Flicker ratio with each warp error relative to its own mean chroma; NaN for grey output."""
        if not (self.chroma_output > 0 and self.chroma_original > 0):
            return math.nan
        return _ratio(self.flicker_output / self.chroma_output, self.flicker_original / self.chroma_original)

    def summary(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if not k.endswith("_per_frame")}
        d.update(
            psnr_gain=self.psnr_gain,
            colourfulness_ratio=self.colourfulness_ratio,
            flicker_ratio=self.flicker_ratio,
            flicker_ratio_relative=self.flicker_ratio_relative,
        )
        return {k: _finite_or_none(v) for k, v in d.items()}


_MEAN_KEYS = (
    "psnr_output",
    "psnr_grey",
    "psnr_gain",
    "colourfulness_ratio",
    "flicker_ratio",
    "flicker_ratio_relative",
    "accuracy",
    "dark_cast_output",
    "dark_cast_original",
    "reference_distance_output",
    "reference_distance_original",
)


@dataclass
class EvalReport:
    model: str
    clips: list[ClipResult]
    ref_mode: str | None = None
    reference: str | None = None
    max_frames: int | None = None
    weights_sha256: str | None = None
    device: str = "cpu"
    notes: list[str] = field(default_factory=list)

    def mean(self) -> dict:
        """Unweighted mean over clips of each figure; fps = all frames / all model time."""
        out: dict = {}
        for key in _MEAN_KEYS:
            vals = [getattr(c, key) for c in self.clips]
            vals = [v for v in vals if v is not None and math.isfinite(v)]
            out[key] = sum(vals) / len(vals) if vals else None
        frames = sum(c.frames for c in self.clips)
        seconds = sum(c.frames / c.fps for c in self.clips if c.fps > 0)
        out["fps"] = frames / seconds if seconds > 0 else None
        out["frames"] = frames
        return out

    def psnr_over_time(self, edges: Sequence[int] = TIME_BUCKETS) -> list[dict]:
        """Mean PSNR of output and grey input per range of frame indices, over all clips' frames:
        ``[{"first", "last", "frames", "psnr_output", "psnr_grey", "psnr_gain"}, ...]`` (ranges
        with no frame left out). Shows how a propagated colouring decays away from its reference."""
        out = []
        longest = max((len(c.psnr_per_frame) for c in self.clips), default=0)
        bounds = [e for e in edges if e < longest] + [longest]
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            po = [v for c in self.clips for v in c.psnr_per_frame[lo:hi]]
            pg = [v for c in self.clips for v in c.psnr_grey_per_frame[lo:hi]]
            mo, mg = sum(po) / len(po), sum(pg) / len(pg)
            out.append({"first": lo, "last": hi - 1, "frames": len(po), "psnr_output": mo, "psnr_grey": mg,
                        "psnr_gain": mo - mg})
        return out

    def as_dict(self) -> dict:
        """JSON-ready (no NaN/inf: undefined figures are None)."""
        return {
            "model": self.model,
            "weights_sha256": self.weights_sha256,
            "device": self.device,
            "ref_mode": self.ref_mode,
            "reference": self.reference,
            "max_frames": self.max_frames,
            "notes": list(self.notes),
            "mean": self.mean(),
            "psnr_over_time": self.psnr_over_time(),
            "clips": [
                dict(
                    c.summary(),
                    psnr_per_frame=[_finite_or_none(v) for v in c.psnr_per_frame],
                    psnr_grey_per_frame=[_finite_or_none(v) for v in c.psnr_grey_per_frame],
                )
                for c in self.clips
            ],
        }

    def write_frames_csv(self, path: str | Path) -> None:
        """One row per frame: clip, frame, psnr_output, psnr_grey (PSNR over time)."""
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["clip", "frame", "psnr_output", "psnr_grey"])
            for c in self.clips:
                for i, (po, pg) in enumerate(zip(c.psnr_per_frame, c.psnr_grey_per_frame)):
                    w.writerow([c.name, i, f"{po:.4f}", f"{pg:.4f}"])


def _fmt(v, spec: str) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return format(v, spec)


def format_report(report: EvalReport) -> str:
    """A plain-text table: one row per clip and the mean."""
    has_ref = any(c.reference_distance_output is not None for c in report.clips)
    cols = ["clip", "frames", "PSNR", "grey", "gain", "colourful", "flicker", "flk/chroma", "acc", "dark",
            "dark orig", "fps"]
    if has_ref:
        cols += ["ref dist", "orig dist"]

    def row(name, frames, d):
        r = [
            name,
            str(frames),
            _fmt(d["psnr_output"], ".2f"),
            _fmt(d["psnr_grey"], ".2f"),
            _fmt(d["psnr_gain"], "+.2f"),
            _fmt(d["colourfulness_ratio"], ".3f"),
            _fmt(d["flicker_ratio"], ".3f"),
            _fmt(d["flicker_ratio_relative"], ".3f"),
            _fmt(d["accuracy"], ".3f"),
            _fmt(d["dark_cast_output"], ".2f"),
            _fmt(d["dark_cast_original"], ".2f"),
            _fmt(d["fps"], ".2f"),
        ]
        if has_ref:
            r += [_fmt(d["reference_distance_output"], ".3f"), _fmt(d["reference_distance_original"], ".3f")]
        return r

    rows = [row(c.name, c.frames, c.summary()) for c in report.clips]
    rows.append(row("mean", report.mean()["frames"], report.mean()))
    widths = [max(len(cols[i]), *(len(r[i]) for r in rows)) for i in range(len(cols))]

    def line(cells):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    title = f"model {report.model}"
    if report.ref_mode:
        title += f", reference: {report.ref_mode}"
    elif report.reference:
        title += f", reference: {report.reference}"
    out = [title, line(cols), line(["-" * w for w in widths])]
    out += [line(r) for r in rows[:-1]]
    out += [line(["-" * w for w in widths]), line(rows[-1])]
    out.append(
        "PSNR in dB (RGB, output and grey input vs original); colourful = colourfulness output/original; "
        "flicker = ab warp error output/original (flk/chroma: each relative to its mean |ab|); acc = share of pixels with a, b within 2% of range; "
        "dark = dark cast, mean |ab| of pixels with L < 10 (output as written; dark orig: the original)"
        + ("; ref dist = ab-histogram Hellinger distance to the reference (lower = more faithful)" if has_ref else "")
    )
    over_time = report.psnr_over_time()
    if len(over_time) > 1:
        out.append(
            "PSNR gain over time (frames: dB): "
            + ", ".join(f"{b['first']}-{b['last']}: {b['psnr_gain']:+.2f}" for b in over_time)
        )
    out += [f"note: {n}" for n in report.notes]
    return "\n".join(out)
