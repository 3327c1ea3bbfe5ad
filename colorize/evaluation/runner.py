"""Evaluate a model on folders of colour clips: decode → grey → colourize → compare.

Each clip is decoded with PyAV as a stream; every frame is converted to Lab, its L is resized
(area-wise) to the model's default render size and pushed through the model's
:class:`~colorize.models.base.StreamColorizer` interface, exactly as the pipeline drives it. The
returned ab is upsampled to full resolution, merged with the original L and compared with the
original frame. Nothing is kept per frame except a few floats (per-frame PSNR), so memory stays
flat whatever the clip length.

Per clip (and as the mean over clips):

* PSNR (RGB, dB) of the output and of the grey input vs the original (mean of per-frame PSNRs),
* colourfulness ratio output / original (Hasler–Süsstrunk, ratio of the per-clip means),
* flicker ratio: ab warp error of the output / of the original, along DIS flow of the original,
  occlusion-masked (:mod:`colorize.evaluation.metrics`); and the same ratio with each warp error
  divided by the mean chroma |ab| of its own frames (``flicker_ratio_relative``), because a
  washed-out output also changes less in absolute terms: a grey output has flicker ratio 0,
  and a half-strength copy of the true colours 0.5 but relative ratio 1,
* colour accuracy of the CNN report (share of pixels with a and b within 2% of the ab range),
* with a reference: the reference distance (Hellinger distance of ab histograms; lower = more
  faithful) of the output and, for scale, of the original,
* frames/second of the model's share of the pipeline: L resize, push/flush and ab upsampling to
  full resolution (decoding, the Lab → RGB merge, encoding and the metrics are not counted; the
  same definition as ``benchmarks/models.py``).

With ``ref_mode="first-frame"`` (exemplar propagation) the clip's first original frame is the
reference; that frame is then left out of every per-frame mean (its PSNR stays in the series).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence, Union

import av
import cv2
import numpy as np
import torch
import torch.nn.functional as F

from colorize.color.lab import lab_to_rgb, linear_to_srgb, rgb_to_lab
from colorize.color.saturation import colourfulness
from colorize.evaluation.metrics import (
    FlowEstimator,
    ab_histogram,
    dark_cast_sum,
    color_accuracy,
    hist_distance,
    psnr,
    valid_flow_mask,
    warp_error_sum,
)
from colorize.evaluation.report import ClipResult, EvalReport
from colorize.models.base import StreamColorizer

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts")
REF_MODES = (None, "first-frame")

ModelSource = Union[StreamColorizer, Callable[[], StreamColorizer]]


class EvalError(ValueError):
    """Bad evaluation input: no clips, undecodable clip, missing reference, …"""


# ---------------------------------------------------------------------------------- frame I/O


def find_clips(paths: Sequence[str | Path]) -> list[Path]:
    """Video files among ``paths`` (files kept as given, folders searched non-recursively)."""
    clips: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            clips += sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in VIDEO_SUFFIXES)
        elif p.is_file():
            clips.append(p)
        else:
            raise EvalError(f"no such file or folder: {p}")
    if not clips:
        raise EvalError(f"no video clips ({', '.join(VIDEO_SUFFIXES)}) in {', '.join(map(str, paths))}")
    return clips


def iter_rgb(path: Path, max_frames: int | None = None, short_side: int | None = None) -> Iterator[np.ndarray]:
    """Decoded frames of the first video stream as (H, W, 3) uint8 sRGB, area-shrunk to a short
    side of ``short_side`` when given and smaller than the frame's."""
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise EvalError(f"cannot open {path}: {exc}") from exc
    with container:
        if not container.streams.video:
            raise EvalError(f"{path} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        n = 0
        try:
            for frame in container.decode(stream):
                if max_frames is not None and n >= max_frames:
                    return
                rgb = frame.to_ndarray(format="rgb24")
                h, w = rgb.shape[:2]
                if short_side is not None and min(h, w) > short_side:
                    f = short_side / min(h, w)
                    rgb = cv2.resize(rgb, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
                yield rgb
                n += 1
        except av.FFmpegError as exc:
            raise EvalError(f"cannot decode {path} after {n} frames: {exc}") from exc


def read_image_lab(path: str | Path) -> torch.Tensor:
    """A still image as Lab (1, 3, H, W)."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise EvalError(f"cannot read reference image {path}")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return rgb_to_lab(_rgb_tensor(rgb))


def _rgb_tensor(rgb_u8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb_u8).permute(2, 0, 1).unsqueeze(0).to(torch.float32).div_(255.0)


def render_shape(height: int, width: int, short_side: int, multiple: int) -> tuple[int, int]:
    """The model's working (h, w): short side ``short_side`` rounded to ``multiple`` but never
    more than the frame's short side rounded up to ``multiple``; aspect kept; both sides multiples
    of ``multiple``. The same rule as the pipeline's ``working_size`` (square pixels)."""
    short = min(height, width)
    target = min(_round_to(short_side, multiple), multiple * math.ceil(short / multiple))
    scale = target / short
    return _round_to(height * scale, multiple), _round_to(width * scale, multiple)


def _round_to(x: float, m: int) -> int:
    return max(m, int(round(x / m)) * m)


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, C, H, W) to ``size``: area average when shrinking, bilinear when enlarging."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if size[0] <= x.shape[-2] and size[1] <= x.shape[-1]:
        return F.interpolate(x, size=size, mode="area")
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def _ab_upsampler() -> tuple[Callable[[torch.Tensor, torch.Tensor], torch.Tensor], str | None]:
    """``fn(ab (1,2,h,w), l_full (1,1,H,W)) -> ab (1,2,H,W)``, and a note if it is the fallback."""
    try:
        from colorize.color.gamut import finish_ab  # the pipeline's guided upsampling + gamut limit
    except ImportError:
        def bilinear(ab: torch.Tensor, l_full: torch.Tensor) -> torch.Tensor:
            return F.interpolate(ab, size=l_full.shape[-2:], mode="bilinear", align_corners=False)

        return bilinear, "colorize.color.upsample not available: ab upsampled bilinearly"
    return finish_ab, None


# ---------------------------------------------------------------------------------- evaluation


def grey_rgb(l: torch.Tensor) -> torch.Tensor:
    """The neutral grey with lightness L: (B, 1, H, W) -> sRGB (B, 3, H, W).

    ``lab_to_rgb`` with a = b = 0, on one channel (D65 white maps to R = G = B within 1e-5).
    """
    fy = (l + 16.0) / 116.0
    y = torch.where(fy > 6.0 / 29.0, fy**3, (116.0 * fy - 16.0) / 903.3)
    return linear_to_srgb(y.clamp(0.0, 1.0)).clamp(0.0, 1.0).expand(-1, 3, -1, -1)


@dataclass
class _Frame:
    rgb: torch.Tensor  # (1, 3, H, W) original, [0, 1]
    lab: torch.Tensor  # (1, 3, H, W) original
    grey: np.ndarray  # (H, W) uint8 luma, for flow


class _ClipAccumulator:
    """Running sums for one clip; frames arrive in index order."""

    def __init__(self, skip_first: bool, flow: FlowEstimator, ref_hist: np.ndarray | None) -> None:
        self.skip_first = skip_first
        self.flow = flow
        self.ref_hist = ref_hist
        self.n = 0
        self.scored = 0
        self.psnr_out: list[float] = []
        self.psnr_grey: list[float] = []
        self.sum_psnr_out = self.sum_psnr_grey = 0.0
        self.sum_cf_out = self.sum_cf_orig = 0.0
        self.sum_acc = 0.0
        self.warp_out = self.warp_orig = 0.0
        self.warp_count = 0
        self.chroma_out = self.chroma_orig = 0.0
        self.dark_out = self.dark_orig = 0.0  # chroma sums over dark pixels (L < 10)
        self.dark_count = 0
        self.hist_out = self.hist_orig = None
        self.prev: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # grey, ab_out, ab_orig

    def add(self, frame: _Frame, ab_out: torch.Tensor, rgb_out: torch.Tensor) -> None:
        p_out = float(psnr(rgb_out, frame.rgb)[0])
        p_grey = float(psnr(grey_rgb(frame.lab[:, :1]), frame.rgb)[0])
        self.psnr_out.append(p_out)
        self.psnr_grey.append(p_grey)
        ab_orig = frame.lab[:, 1:]
        if not (self.skip_first and self.n == 0):
            self.scored += 1
            self.sum_psnr_out += p_out
            self.sum_psnr_grey += p_grey
            self.sum_cf_out += float(colourfulness(rgb_out)[0])
            self.sum_cf_orig += float(colourfulness(frame.rgb)[0])
            self.sum_acc += float(color_accuracy(ab_out, ab_orig)[0])
            # Dark cast: the chroma of the picture as written (Lab of the clipped output RGB).
            l_orig = frame.lab[:, :1]
            d_out, n_dark = dark_cast_sum(l_orig, rgb_to_lab(rgb_out)[:, 1:])
            d_orig, _ = dark_cast_sum(l_orig, ab_orig)
            self.dark_out += d_out
            self.dark_orig += d_orig
            self.dark_count += n_dark
            if self.ref_hist is not None:
                h_out, h_orig = ab_histogram(ab_out), ab_histogram(ab_orig)
                self.hist_out = h_out if self.hist_out is None else self.hist_out + h_out
                self.hist_orig = h_orig if self.hist_orig is None else self.hist_orig + h_orig
        ab_out_np = ab_out[0].numpy()
        ab_orig_np = ab_orig[0].numpy()
        if self.prev is not None:
            prev_grey, prev_out, prev_orig = self.prev
            flow_bw = self.flow(frame.grey, prev_grey)
            flow_fw = self.flow(prev_grey, frame.grey)
            mask = valid_flow_mask(flow_bw, flow_fw)
            e_out, count = warp_error_sum(prev_out, ab_out_np, flow_bw, mask)
            e_orig, _ = warp_error_sum(prev_orig, ab_orig_np, flow_bw, mask)
            self.warp_out += e_out
            self.warp_orig += e_orig
            self.warp_count += count
            self.chroma_out += float(np.sqrt((ab_out_np**2).sum(0))[mask].sum(dtype=np.float64))
            self.chroma_orig += float(np.sqrt((ab_orig_np**2).sum(0))[mask].sum(dtype=np.float64))
        self.prev = (frame.grey, ab_out_np, ab_orig_np)
        self.n += 1


def _resolve_model(model: ModelSource) -> StreamColorizer:
    if isinstance(model, StreamColorizer):
        return model
    built = model()
    if not isinstance(built, StreamColorizer):
        raise TypeError(f"model factory returned {type(built).__name__}, not a StreamColorizer")
    return built


def evaluate(
    model_factory: ModelSource,
    clips: Sequence[str | Path],
    max_frames: int | None = None,
    ref_mode: str | None = None,
    reference: str | Path | torch.Tensor | None = None,
    flow_preset: str = "fast",
    progress: Callable[[str, int], None] | None = None,
    frame_short_side: int | None = None,
    render_size: int | None = None,
) -> EvalReport:
    """Colourize each clip's grey version with the model and compare with the original.

    model_factory: a StreamColorizer, or a zero-argument callable that builds one (called once;
        the model is ``reset()`` between clips).
    clips: video files (see :func:`find_clips` for folders).
    max_frames: at most this many frames per clip (None = all).
    ref_mode: None, or "first-frame": each clip's first original frame is the reference.
    reference: a still image (path) or Lab (1, 3, H, W) used as the reference for every clip.
    flow_preset: DIS preset for the flicker flow ("ultrafast", "fast", "medium").
    progress: called as ``progress(clip_name, frames_done)`` after each colourized frame.
    frame_short_side: shrink the original frames first (faster, for quick checks; figures are then
        not those of full-resolution output). None = full resolution.
    render_size: short side of the frames the model sees (as ``colorize --render-size``);
        None = the model's default.
    """
    if ref_mode not in REF_MODES:
        raise EvalError(f"ref_mode must be one of {REF_MODES}, got {ref_mode!r}")
    if ref_mode is not None and reference is not None:
        raise EvalError("give either ref_mode='first-frame' or a reference image, not both")
    if max_frames is not None and max_frames < 1:
        raise EvalError(f"max_frames must be >= 1, got {max_frames}")
    clips = [Path(c) for c in clips]
    if not clips:
        raise EvalError("no clips to evaluate")
    model = _resolve_model(model_factory)
    info = model.info
    if info.needs_reference and ref_mode is None and reference is None:
        raise EvalError(
            f"model {info.name!r} needs a reference: use ref_mode='first-frame' (propagation) "
            "or give a reference image"
        )
    ref_lab: torch.Tensor | None = None
    ref_name = None
    if reference is not None:
        if isinstance(reference, torch.Tensor):
            ref_lab, ref_name = reference.to(torch.float32).cpu(), "<tensor>"
        else:
            ref_lab, ref_name = read_image_lab(reference), str(reference)
        if ref_lab.dim() != 4 or ref_lab.shape[:2] != (1, 3):
            raise EvalError(f"reference must be Lab (1, 3, H, W), got {tuple(ref_lab.shape)}")

    upsample, note = _ab_upsampler()
    report = EvalReport(
        model=info.name,
        clips=[],
        ref_mode=ref_mode,
        reference=ref_name,
        max_frames=max_frames,
        weights_sha256=getattr(model, "weights_sha256", None),
        device=_device_label(model),
        notes=[note] if note else [],
    )
    if (ref_mode or reference is not None) and not info.needs_reference:
        report.notes.append(f"{info.name} takes no reference: it is only used to score faithfulness")
    flow = FlowEstimator(flow_preset)
    with torch.no_grad():  # not inference_mode: models may cache on tensor versions
        for path in clips:
            report.clips.append(
                _evaluate_clip(model, path, max_frames, ref_mode, ref_lab, flow, upsample, progress, frame_short_side,
                               render_size or model.info.default_render_size)
            )
    return report


def _model_reference(model: StreamColorizer, ref_lab: torch.Tensor, short_side: int) -> None:
    # As the pipeline loads a --ref still: area-shrunk to a short side of at most the render size.
    h, w = ref_lab.shape[-2:]
    if min(h, w) > short_side:
        f = short_side / min(h, w)
        ref_lab = resize(ref_lab, (max(1, round(h * f)), max(1, round(w * f))))
    model.set_reference(ref_lab.contiguous().to(model.device))


def _evaluate_clip(
    model: StreamColorizer,
    path: Path,
    max_frames: int | None,
    ref_mode: str | None,
    ref_lab: torch.Tensor | None,
    flow: FlowEstimator,
    upsample: Callable,
    progress: Callable[[str, int], None] | None,
    frame_short_side: int | None = None,
    render_size: int = 256,
) -> ClipResult:
    info = model.info
    model.reset()
    pending: dict[int, _Frame] = {}
    acc: _ClipAccumulator | None = None
    size = render = None
    model_seconds = 0.0

    def consume(ready: list[tuple[int, torch.Tensor]]) -> float:
        spent = 0.0
        for index, ab in ready:
            if index not in pending:
                raise RuntimeError(f"model {info.name!r} returned frame {index} twice or out of order")
            frame = pending.pop(index)
            t0 = time.perf_counter()
            ab_full = upsample(ab[:1].to(torch.float32), frame.lab[:, :1].to(ab.device)).cpu()
            spent += time.perf_counter() - t0
            rgb_out = lab_to_rgb(torch.cat((frame.lab[:, :1], ab_full), dim=1))
            acc.add(frame, ab_full, rgb_out)
            if progress is not None:
                progress(path.name, acc.n)
        return spent

    index = -1
    for index, rgb_u8 in enumerate(iter_rgb(path, max_frames, frame_short_side)):
        rgb = _rgb_tensor(rgb_u8)
        lab = rgb_to_lab(rgb)
        if index == 0:
            size = rgb.shape[-2:]
            render = render_shape(size[0], size[1], render_size, info.size_multiple)
            ref_now = lab if ref_mode == "first-frame" else ref_lab
            ref_hist = ab_histogram(ref_now[:, 1:]) if ref_now is not None else None
            if ref_now is not None and info.needs_reference:
                _model_reference(model, ref_now, render_size)
            acc = _ClipAccumulator(ref_mode == "first-frame", flow, ref_hist)
        elif rgb.shape[-2:] != size:
            raise EvalError(f"{path}: frame size changes mid-stream at frame {index}")
        pending[index] = _Frame(rgb, lab, cv2.cvtColor(rgb_u8, cv2.COLOR_RGB2GRAY))
        t0 = time.perf_counter()
        l_small = resize(lab[:, :1], render)[0].to(model.device)
        ready = model.push(index, l_small)
        model_seconds += time.perf_counter() - t0
        model_seconds += consume(ready)
    if index < 0:
        raise EvalError(f"{path} has no decodable frames")
    t0 = time.perf_counter()
    ready = model.flush()
    model_seconds += time.perf_counter() - t0
    model_seconds += consume(ready)
    model.reset()
    if pending:
        raise RuntimeError(f"model {info.name!r} never returned frames {sorted(pending)[:5]}… of {path.name}")

    scored = max(acc.scored, 1)
    frames = acc.n
    return ClipResult(
        name=path.name,
        frames=frames,
        scored_frames=acc.scored,
        width=int(size[1]),
        height=int(size[0]),
        render_width=render[1],
        render_height=render[0],
        psnr_output=acc.sum_psnr_out / scored,
        psnr_grey=acc.sum_psnr_grey / scored,
        colourfulness_output=acc.sum_cf_out / scored,
        colourfulness_original=acc.sum_cf_orig / scored,
        flicker_output=acc.warp_out / acc.warp_count if acc.warp_count else math.nan,
        flicker_original=acc.warp_orig / acc.warp_count if acc.warp_count else math.nan,
        chroma_output=acc.chroma_out / acc.warp_count if acc.warp_count else math.nan,
        chroma_original=acc.chroma_orig / acc.warp_count if acc.warp_count else math.nan,
        accuracy=acc.sum_acc / scored,
        dark_cast_output=acc.dark_out / acc.dark_count if acc.dark_count else math.nan,
        dark_cast_original=acc.dark_orig / acc.dark_count if acc.dark_count else math.nan,
        dark_pixels=acc.dark_count,
        fps=frames / model_seconds if model_seconds > 0 else math.inf,
        reference_distance_output=hist_distance(acc.hist_out, acc.ref_hist) if acc.hist_out is not None else None,
        reference_distance_original=hist_distance(acc.hist_orig, acc.ref_hist) if acc.hist_orig is not None else None,
        psnr_per_frame=acc.psnr_out,
        psnr_grey_per_frame=acc.psnr_grey,
    )


# ------------------------------------------------------------------------------ entry points


def quick_eval(
    stream_colorizer: StreamColorizer, clips: Sequence[str | Path], max_frames: int = 24, frame_short_side: int | None = 256
) -> dict:
    """Fast periodic evaluation for the trainer: a few frames per clip, frames shrunk to a short
    side of ``frame_short_side`` (the usual render size: no chroma upsampling), the cheapest flow.
    For trends between checkpoints; the shipped figures come from :func:`evaluate` at full size.

    Returns ``{"psnr_gain", "colourfulness_ratio", "flicker_ratio", "psnr_output", "fps"}``
    (means over clips; None where undefined). Exemplar models run in first-frame propagation.
    Put the model's networks in eval mode first; the model is ``reset()`` before and after.
    """
    ref_mode = "first-frame" if stream_colorizer.info.needs_reference else None
    report = evaluate(stream_colorizer, clips, max_frames=max_frames, ref_mode=ref_mode, flow_preset="ultrafast",
                      frame_short_side=frame_short_side)
    mean = report.mean()
    return {k: mean[k] for k in ("psnr_gain", "colourfulness_ratio", "flicker_ratio", "psnr_output", "fps")}


def _device_label(model) -> str:
    """"cpu", or "cuda:0 float16" when the networks do not run in float32."""
    dtype = getattr(model, "dtype", torch.float32)
    return str(model.device) if dtype == torch.float32 else f"{model.device} {str(dtype).replace('torch.', '')}"


def cli_eval(
    model: str,
    dirs: Sequence[str | Path],
    weights: str | Path | None = None,
    ref_mode: str | None = None,
    max_frames: int | None = None,
    json_out: bool = False,
    device: str = "cpu",
    out_csv: str | Path | None = None,
    reference: str | Path | None = None,
    progress: Callable[[str, int], None] | None = None,
    render_size: int | None = None,
    precision: str = "auto",
    *,
    json: bool | None = None,
) -> EvalReport:
    """``colorize eval``: build ``model`` once, evaluate every clip in ``dirs``, return the report.

    Prints nothing: the CLI prints ``format_report(report)`` or, with ``--json``,
    ``json.dumps(report.as_dict())``; ``json_out`` (alias ``json``) is accepted so the CLI can
    pass its options through, the rendering is the caller's. ``device`` is "auto", "cpu",
    "cuda[:N]" or "mps"; ``precision`` as in the pipeline (auto: GPUs compute in half precision).
    ``out_csv`` writes the per-frame PSNR series (:meth:`EvalReport.write_frames_csv`). A model
    that needs a reference and gets neither ``ref_mode`` nor ``reference`` runs in first-frame
    propagation.
    """
    from colorize.models.registry import create_model, get_model_info
    from colorize.pipeline.device import compute_dtype, resolve_device

    clips = find_clips(dirs)
    info = get_model_info(model)
    if info.needs_reference and ref_mode is None and reference is None:
        ref_mode = "first-frame"
    dev = resolve_device(str(device))
    built = create_model(model, device=dev, dtype=compute_dtype(dev, precision), weights=weights)
    report = evaluate(built, clips, max_frames=max_frames, ref_mode=ref_mode, reference=reference, progress=progress,
                      render_size=render_size)
    if out_csv is not None:
        report.write_frames_csv(out_csv)
    return report
