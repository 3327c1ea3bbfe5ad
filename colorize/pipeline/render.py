"""The frame work of a segmented run: find the shots, colourize a range of frames, render a segment.

* :func:`scan_shots` — one decoding pass over the film that finds the shots exactly as a one-piece
  run does (same working-size L, same scene-cut detector, same reference ranges and choices);
* :func:`colorize_range` — frames ``start`` .. ``stop - 1`` of a film, colourized as in a one-piece
  run: decoding starts at the warm-up frame (seeking), the model sees the warm-up frames and, for a
  model that answers late (a look-ahead), the frames after ``stop`` it needs; those outputs are
  dropped. ``--preview`` can use it for a few frames anywhere in a film;
* :func:`render_segment` — segment ``i`` of a :class:`~colorize.pipeline.segments.SegmentPlan`
  encoded into the work folder: a self-contained, picklable call for an executor in another
  process (it builds the model from the plan's config when it is not given one).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from colorize.pipeline.errors import ModelError, take_pending
from colorize.pipeline.segments import PartRecord, SegmentPlan, encode_options, sha256_file
from colorize.pipeline.stages import BackgroundIterator, BackgroundWorker


def _work_l(src, work_hw, rot_k: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(L at working size in display orientation on ``device``, full-size L on the CPU): the same
    arithmetic as the one-piece runner."""
    from colorize.color.merge import full_l, rgb_to_work_l

    l_work = rgb_to_work_l(src.rgb, work_hw).to(device, torch.float32)
    if rot_k:
        l_work = torch.rot90(l_work, rot_k, dims=(-2, -1))
    return l_work, full_l(src.rgb)


def _seconds(src) -> float | None:
    return float(src.pts * src.time_base) if src.pts is not None and src.time_base else None


@dataclass
class Shots:
    """What :func:`scan_shots` finds."""

    frames: int
    pts: list[int | None]
    cuts: list[int]
    shot_refs: list[int | None]
    records: list[dict]


def scan_shots(path: Path, info, work_hw, rot_k: int, scene_threshold: float, references: list,
               score_fn: Callable | None, on_frame: Callable[[int], None] | None = None) -> Shots:
    """Decode the film once and find its shots as the one-piece runner does (cut = detector or a
    change of reference time range; a reference chosen at each shot's first frame).

    Only the luma plane is read (``io.decode.luma_l``: no RGB conversion, about 5x cheaper than
    the runner's path, which matters because this pass comes on top of the run); its L matches the
    runner's to within a code value's rounding, so a cut score would have to sit within about 0.001
    of the threshold for the two to disagree. Pictures the luma plane cannot stand for (RGB, more
    than 8 bits) take the runner's conversion. The reference choice at a shot start uses the
    runner's exact L."""
    from colorize.color.merge import resize_l, rgb_to_work_l
    from colorize.io import MediaError
    from colorize.io.decode import frame_to_rgb, iter_raw_frames, luma_l
    from colorize.pipeline.references import ReferenceChooser
    from colorize.pipeline.scenes import ShotStarts

    chooser = ReferenceChooser(references, info.fps) if references else None
    shots = ShotStarts(scene_threshold, chooser)
    pts: list[int | None] = []
    cuts: list[int] = []
    shot_refs: list[int | None] = []

    def exact_l(frame) -> torch.Tensor:
        l_work = rgb_to_work_l(frame_to_rgb(frame, info), work_hw)
        return torch.rot90(l_work, rot_k, dims=(-2, -1)) if rot_k else l_work

    def prepared():
        with torch.inference_mode():
            for index, frame in iter_raw_frames(path, info):
                l_full = luma_l(frame, info)
                if l_full is None:
                    l_work = rgb_to_work_l(frame_to_rgb(frame, info), work_hw)
                else:
                    l_work = resize_l(torch.from_numpy(l_full).unsqueeze(0), work_hw)
                tb = frame.time_base
                seconds = float(frame.pts * tb) if frame.pts is not None and tb else None
                yield index, frame, seconds, l_work

    decode = BackgroundIterator(prepared, 8, name="scan")
    try:
        with torch.inference_mode():
            for n, (index, frame, seconds, l_work) in enumerate(decode):
                if rot_k:
                    l_work = torch.rot90(l_work, rot_k, dims=(-2, -1))
                cut = shots.is_cut(index, seconds, l_work)
                if cut:
                    cuts.append(index)
                if n == 0 or cut:
                    if chooser is not None:
                        ref = chooser.choose(index, seconds, exact_l(frame), score_fn)
                        shot_refs.append(next(i for i, r in enumerate(references) if r is ref))
                    else:
                        shot_refs.append(None)
                pts.append(frame.pts)
                if on_frame is not None:
                    on_frame(n + 1)
    finally:
        decode.close()
    if not pts:
        raise MediaError(f"{path}: no video frames could be decoded")
    records = chooser.shots if chooser is not None else [{"first_frame": 0}] + [{"first_frame": c} for c in cuts]
    return Shots(len(pts), pts, cuts, shot_refs, records)


def colorize_range(model, plan: SegmentPlan, start: int, stop: int, decode_from: int,
                   decode_pts: int | None, references: list, device, queue_size: int = 8,
                   timings: dict | None = None) -> Iterator[tuple[object, torch.Tensor, torch.Tensor]]:
    """Yield ``(src, l_full, ab)`` for frames ``start`` .. ``stop - 1`` in order (ab: (D, 2, h, w)
    at working size, display orientation), computed after a warm-up from ``decode_from`` (which
    must not lie before the shot's first frame). The model is flushed (outputs dropped) and reset
    first; it may hold frames back afterwards. ``timings`` (optional) accumulates ``model_s``, ``decode_wait_s`` and
    ``frames_pushed`` (warm-up and look-ahead frames included)."""
    from colorize.io import iter_frame_range

    cuts = set(plan.cuts)
    d = model.num_outputs
    info = plan.info

    def set_shot(frame: int) -> None:
        ref = plan.shot_refs[plan.shot_of(frame)] if plan.shot_refs else None
        if ref is not None:
            model.set_reference(references[ref].lab.to(device))

    def prepared():
        with torch.inference_mode():
            for src in iter_frame_range(plan.input, info, decode_from, None, decode_pts):
                yield (src, *_work_l(src, plan.work_hw, plan.rot_k, "cpu"))

    pending: dict[int, tuple[object, torch.Tensor]] = {}
    wanted = stop  # frames below this are still owed
    owed = set(range(start, stop))
    decode = BackgroundIterator(prepared, queue_size, name="decode")
    clock = {"model_s": 0.0, "pushed": 0}

    def timed_call(fn, *args):
        t0 = time.perf_counter()
        out = fn(*args)
        clock["model_s"] += time.perf_counter() - t0
        return out

    try:
        with torch.inference_mode():
            timed_call(model.flush)  # what an earlier range left held back (the contract: flush, then reset)
            model.reset()
            set_shot(decode_from)

            def take(ready):
                for index, ab in ready:
                    item = take_pending(pending, index, ab, d, plan.config.model)
                    if index in owed:
                        owed.discard(index)
                        yield item[0], item[1], ab

            for src, l_work, l_full in decode:
                i = src.index
                if i in cuts and i > decode_from:
                    yield from take(timed_call(model.flush))
                    model.reset()
                    if not owed:
                        break
                    set_shot(i)
                if i >= wanted and not owed:
                    break
                pending[i] = (src, l_full)
                clock["pushed"] += 1
                yield from take(timed_call(model.push, i, l_work.to(device)))
                if not owed:
                    break
            else:
                yield from take(timed_call(model.flush))
    finally:
        decode.close()
        if timings is not None:
            timings["model_s"] = timings.get("model_s", 0.0) + clock["model_s"]
            timings["decode_wait_s"] = timings.get("decode_wait_s", 0.0) + decode.wait_s
            timings["frames_pushed"] = timings.get("frames_pushed", 0) + clock["pushed"]
    if owed:
        raise ModelError(f"frames {sorted(owed)[:5]} were never returned (the film ends at fewer frames?)")


def writer_ab(ab: torch.Tensor, l_full: torch.Tensor, rot_k: int,
              chroma_size: tuple[int, int] | None) -> tuple[np.ndarray, np.ndarray]:
    """ab (D, 2, h, w) at working size and L (1, H, W) -> (float32 (D, h', w', 2), L (h', w'))
    numpy, as a MediaWriter takes them, through color.gamut.finish_ab (the one path from a model's
    chroma to the picture). ``chroma_size``: the writer's ``chroma_size``. Where the output keeps
    its chroma at a smaller size (4:2:0: a quarter of the samples), the guided upsampling and the
    gamut step are computed at that size, at L area-resampled to it as the writer's own chroma
    step does; else at the frame size."""
    from colorize.color.gamut import finish_ab
    from colorize.color.merge import resize_l

    if rot_k:
        ab = torch.rot90(ab, -rot_k, dims=(-2, -1))
    l = l_full if chroma_size is None else resize_l(l_full, chroma_size)
    out = finish_ab(ab.float(), l.to(ab.device).unsqueeze(0).expand(ab.shape[0], -1, -1, -1))
    return out.permute(0, 2, 3, 1).float().cpu().numpy(), l[0].numpy()


def render_segment(plan: SegmentPlan, index: int, work_dir: Path, runner=None,
                   on_frame: Callable[[int], None] | None = None, timings: dict | None = None) -> PartRecord:
    """Render segment ``index`` of ``plan`` into ``work_dir / plan.part_name(index)``.

    ``runner``: a :class:`~colorize.pipeline.runner.Runner` with the model built (the local
    executor passes its own); None builds one from ``plan.config`` (an executor's worker process).
    ``on_frame(n)``: called with the number of this segment's frames encoded so far.
    ``timings``: a dict that accumulates model_s, decode_wait_s, encode_s and encode_wait_s.
    Returns the :class:`PartRecord` for the journal. The part appears under its name only when
    complete (MediaWriter's temporary file + rename); on any error nothing is left.
    """
    from colorize.io import MediaWriter

    if runner is None:
        from colorize.pipeline.runner import Runner

        runner = Runner(plan.config)
    runner.build()
    model = runner.model
    seg = plan.segments[index]
    work_dir = Path(work_dir)
    final = work_dir / plan.part_name(index)
    writer = MediaWriter(final, plan.info, encode_options(plan.config), copy_streams=False)
    done = 0

    def write(src, l_full, ab) -> None:
        arr, l_np = writer_ab(ab, l_full, plan.rot_k, writer.chroma_size)
        writer.write(src, arr[0], l_np)

    encode = BackgroundWorker(write, plan.config.queue_size, name="encode")
    try:
        with torch.inference_mode():
            for src, l_full, ab in colorize_range(model, plan, seg.start, seg.stop, seg.decode_from,
                                                  seg.decode_pts, runner.references, runner.device,
                                                  plan.config.queue_size, timings):
                encode.put(src, l_full, ab)
                done += 1
                if on_frame is not None:
                    on_frame(done)
        encode.finish()
        if timings is not None:
            timings["encode_s"] = timings.get("encode_s", 0.0) + encode.busy_s
            timings["encode_wait_s"] = timings.get("encode_wait_s", 0.0) + encode.wait_s
        if writer.frames_written != seg.frames:
            raise ModelError(f"segment {index} got {writer.frames_written} frames, {seg.frames} expected")
        writer.commit()
    except BaseException:
        encode.cancel()
        writer.abort()
        raise
    return PartRecord(index, final.name, seg.frames, sha256_file(final))

