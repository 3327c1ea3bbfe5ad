"""Segments of one film rendered on an executor other than this process (``--executor ray``).

The driver plans the film (``segmented.make_plan``: one scanning pass) and keeps the journal; each
task gets the picklable :class:`~colorize.pipeline.segments.SegmentPlan`, decodes only its own
range of the input (a keyframe seek, then its warm-up frames) and writes its part into the work
folder with :func:`~colorize.pipeline.render.render_segment`, exactly as the local executor does;
the driver journals every part as it arrives and joins them at the end. So the output is the local
run's, frame for frame, as long as every task computes with the same arithmetic: the same torch
thread count as the driver (set in each task) and the same device type.

Paths are sent as the driver sees them and each task first changes into the driver's working
folder: on a cluster the input, the references, the weights and the output folder must be on
storage that every node mounts at the same path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Sequence

# One runner (model built once) per worker process, reused by every segment of the same run that
# the worker is given: a model build costs about a second, a segment minutes.
_RUNNER_CACHE: dict = {}


def cpus_per_task(device) -> float:
    """CPUs a segment task keeps busy, for the executor's reservation: the driver's torch
    threads, plus the core the model's backbone overlaps onto where it does (one thread on a CPU
    with a core to spare: colorize.models.overlap.spare_core); 1 on a GPU."""
    import torch

    from colorize.models.overlap import spare_core

    if torch.device(device).type != "cpu":
        return 1
    return torch.get_num_threads() + (1 if spare_core(device) else 0)


def render_segment_task(plan, index: int, work_dir: str, threads: int | None, cwd: str, device: str):
    """The task: segment ``index`` of ``plan`` into ``work_dir``; returns its ``PartRecord`` and
    the timings ``render_segment`` accumulated (model, decode wait, encode, frames pushed).

    ``device``: the driver's device type ("cpu", "cuda", "mps"), so that a worker with a GPU does
    not compute a CPU driver's film differently (``--device auto`` resolves per machine)."""
    import dataclasses

    import torch

    from colorize.pipeline.render import render_segment
    from colorize.pipeline.runner import Runner

    os.chdir(cwd)
    if threads:
        torch.set_num_threads(threads)
    config = dataclasses.replace(plan.config, device=device)
    runner = _RUNNER_CACHE.get(config)
    if runner is None:
        _RUNNER_CACHE.clear()
        runner = _RUNNER_CACHE[config] = Runner(config)
    timings: dict = {}
    record = render_segment(plan, index, Path(work_dir), runner, timings=timings)
    return record, timings


def render_segments(executor, plan, indices: Sequence[int], work_dir: Path, threads: int | None,
                    device: str = "cpu") -> Iterator:
    """Render the segments ``indices`` of ``plan`` on ``executor``; yields ``(PartRecord, timings)``
    as each task finishes (any order). The first failure is raised here; the tasks still pending are
    then cancelled and the parts already yielded stay valid."""
    work = str(Path(work_dir).resolve())
    cwd = os.getcwd()
    args = [(plan, i, work, threads, cwd, device) for i in indices]
    for _, (record, timings) in executor.map(render_segment_task, args):
        yield record, timings
