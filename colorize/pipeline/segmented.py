"""The local executor of a segmented run: plan (or reuse the journal's plan), render the segments
not yet finished one after the other, join them, write the sidecar, remove the work folder.

Interruptions: Ctrl-C / SIGTERM raise :class:`~colorize.pipeline.segments.SegmentsKept` (a
KeyboardInterrupt) after the segment in progress is discarded; the finished ones and the journal
stay in the work folder, and the same command resumes from them (with no segment finished yet the
folder is removed, as if the run had not started). ``kill -9`` or a power cut leave
at most a temporary ``.part-*.partial-*`` file, which a resumed run ignores (and removes with the
folder at the end). Any other error removes the work folder unless a segment had finished (the
error message then says they are kept).
"""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import torch

from colorize.pipeline import events as ev
from colorize.pipeline.render import render_segment, scan_shots
from colorize.pipeline.segments import (
    Journal, SegmentPlan, SegmentsKept, discard, encode_options, fingerprint, plan_segments, why_different,
    work_dir_for,
)


def uses_segments(config, info) -> bool:
    """Videos with one colouring per frame go through segments unless ``segment_frames`` is 0."""
    return config.segment_frames > 0 and not info.is_image and config.diverse == 1


def _fingerprint(runner, job) -> dict:
    threads = torch.get_num_threads() if runner.device.type == "cpu" else None
    return fingerprint(runner.config, job.input, runner.weights_sha256, [r.describe() for r in runner.references],
                       str(runner.device), str(runner.dtype).replace("torch.", ""), threads, runner.render_size)


def _open_journal(runner, job, work: Path, fp: dict) -> Journal | None:
    """The journal to resume from, or None (after removing a stale work folder, saying why)."""
    if not work.exists():
        return None
    say = lambda text: runner.on_event(ev.Notice(job.input, text))  # noqa: E731
    if runner.config.overwrite:
        discard(work)
        say(f"starting over (--overwrite): removed the segments of an earlier run in {work}")
        return None
    old = Journal.load(work)
    reason = "its journal cannot be read" if old is None else why_different(old.fingerprint, fp)
    if reason is not None:
        discard(work)
        say(f"starting over: {reason} since the interrupted run; its segments in {work} were removed")
        return None
    return old


def make_plan(runner, job, work_hw, rot_k: int) -> SegmentPlan:
    """Scan the film for its shots and cut it into segments (the planning pass)."""
    cfg = runner.config
    model = runner.model
    device = runner.device
    score = (lambda l, lab: model.reference_score(l, lab.to(device))) if runner.references else None
    shots = scan_shots(job.input, job.info, work_hw, rot_k, cfg.scene_threshold, runner.references, score)
    segs = plan_segments(shots.cuts, shots.frames, shots.pts, cfg.segment_frames, cfg.warmup_frames)
    return SegmentPlan(
        input=Path(job.input), info=job.info, config=cfg, render_size=runner.render_size, work_hw=tuple(work_hw),
        rot_k=rot_k, frames=shots.frames, cuts=tuple(shots.cuts), shot_refs=tuple(shots.shot_refs),
        segments=segs, shots=tuple(shots.records),
    )


def run_segmented(runner, job, finals: list[Path], result: ev.FileResult, work_hw, rot_k: int) -> ev.FileResult:
    """Colourize ``job`` as segments into ``finals[0]``; returns ``result`` filled in."""
    from colorize.io.join import join_parts
    from colorize.pipeline.inputs import sidecar_path
    from colorize.pipeline.sidecar import atomic_write_bytes, sidecar_bytes

    output = finals[0]
    work = work_dir_for(output)
    t_start = time.perf_counter()
    fp = _fingerprint(runner, job)
    journal = _open_journal(runner, job, work, fp)
    timings: dict[str, float] = {"model_s": 0.0, "decode_wait_s": 0.0, "encode_s": 0.0, "encode_wait_s": 0.0}
    created = False
    if journal is None:
        t0 = time.perf_counter()
        plan = make_plan(runner, job, work_hw, rot_k)
        timings["scan_s"] = time.perf_counter() - t0
        work.mkdir(exist_ok=True)
        created = True
        journal = Journal(work, fp, plan.to_json())
        journal.save()
    else:
        plan = SegmentPlan.from_json(journal.plan, job.input, job.info, runner.config)
    total = len(plan.segments)
    kept = journal.verified_parts()
    journal.parts = kept
    reused = sum(p.frames for p in kept.values())
    if kept:
        runner.on_event(ev.Notice(job.input, f"resuming: {len(kept)} of {total} segments "
                                             f"({reused} of {plan.frames} frames) are done in {work}"))
    done_before = reused
    if reused:
        runner.on_event(ev.FrameDone(job.input, reused))
    t0 = time.perf_counter()
    try:
        executor = getattr(runner, "executor", None)
        if executor is not None and executor.name != "local":  # --executor ray (pipeline/distributed.py)
            from colorize.pipeline.distributed import render_segments

            threads = torch.get_num_threads() if runner.device.type == "cpu" else None
            todo = [s.index for s in plan.segments if s.index not in journal.parts]
            for record, spent in render_segments(executor, plan, todo, work, threads, runner.device.type):
                for key, value in spent.items():  # the tasks' model/encode time, summed as a local run does
                    timings[key] = timings.get(key, 0) + value
                journal.add(record)
                done_before += record.frames
                runner.on_event(ev.FrameDone(job.input, done_before))
        for seg in plan.segments:
            if seg.index in journal.parts:
                continue
            base = done_before
            record = render_segment(plan, seg.index, work, runner, timings=timings,
                                    on_frame=lambda n, b=base: runner.on_event(ev.FrameDone(job.input, b + n)))
            journal.add(record)
            done_before += record.frames
        timings["render_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        parts = [work / journal.parts[s.index].file for s in plan.segments]
        join_parts(parts, output, job.info, encode_options(runner.config), expected_frames=plan.frames)
        timings["join_s"] = time.perf_counter() - t0
    except KeyboardInterrupt as exc:
        n = len(journal.parts)
        if n == 0:  # nothing worth keeping: leave the folder as it was before the run
            discard(work)
            raise
        raise SegmentsKept(
            f"{n} of {total} segments of {job.input} are kept in {work}: run the same command again to "
            f"resume, or delete that folder (or add --overwrite) to start over"
        ) from exc
    except BaseException as exc:
        if journal.parts:
            note = f" ({len(journal.parts)} of {total} finished segments kept in {work}; the same command resumes)"
            try:
                exc.args = (f"{exc.args[0]}{note}",) + tuple(exc.args[1:]) if exc.args else (note.strip(),)
            except (AttributeError, TypeError):
                pass
        elif created or work.exists():
            discard(work)
        raise
    timings["total_s"] = time.perf_counter() - t_start
    pushed = int(timings.pop("frames_pushed", 0))
    chooser = SimpleNamespace(shots=list(plan.shots)) if runner.references else None
    record = runner._sidecar(job, result, finals, timings, plan.frames, job.info.frames, list(plan.cuts),
                             chooser, None, None)
    record["segments"] = {
        "count": total, "reused": len(kept), "reused_frames": reused,
        "max_frames": runner.config.segment_frames, "warmup_frames": runner.config.warmup_frames,
        "ranges": [[s.start, s.stop] for s in plan.segments],
        # frames the model saw beyond the ones rendered in this run (warm-ups, look-ahead): the cost
        "extra_model_frames": pushed - (plan.frames - reused),
        "executor": getattr(getattr(runner, "executor", None), "name", "local"),  # --executor
    }
    side = sidecar_path(job.output)
    atomic_write_bytes(side, sidecar_bytes(record))
    discard(work)
    result.status = "done"
    result.frames = plan.frames
    result.outputs = (output, side)
    result.shots = list(plan.shots) if runner.references else []
    return result
