"""The runner: input files in, colourized files out, one model for the whole batch.

Per input::

    decode thread                 main thread                          encode thread
    iter_frames -> L at working   scene cut? -> flush + reset model     upsample ab to full size,
    size + full-size L  --queue-> reference per shot -> model.push --q-> guided by full-size L;
                                  (frames come back in order,          MediaWriter.write for
                                  possibly later: look-ahead)          each candidate

Memory is bounded by the two queues and the model's own look-ahead. Outputs are written to
temporary files in the output folder and renamed only when complete (MediaWriter.commit), so an
error or Ctrl-C leaves nothing half-written; the sidecar is written the same way.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Iterator

import torch

from colorize.pipeline import events as ev
from colorize.pipeline.config import RunConfig
from colorize.pipeline.device import compute_dtype, resolve_device
from colorize.pipeline.diverse import ContactSheet, SaturationTally, candidates_rgb, sheet_indices
from colorize.pipeline.errors import ModelError, UsageError, take_pending
from colorize.pipeline.inputs import Job, candidate_paths, contact_sheet_path, sidecar_path
from colorize.pipeline.references import Reference, ReferenceChooser, load_reference, parse_ref
from colorize.pipeline.scenes import ShotStarts
from colorize.pipeline.sidecar import atomic_write_bytes, environment, sidecar_bytes, weights_record
from colorize.pipeline.stages import BackgroundIterator, BackgroundWorker

EventSink = Callable[[object], None]


def _round_to(x: float, m: int) -> int:
    return max(m, int(round(x / m)) * m)


def working_size(width: int, height: int, sar: Fraction | None, render_size: int, multiple: int) -> tuple[int, int]:
    """(h, w) of the model's frame in storage orientation: display aspect kept, short side about
    ``render_size`` (a multiple of ``multiple``), never upscaled beyond the next multiple."""
    sar_f = float(sar) if sar else 1.0
    disp_w, disp_h = width * (sar_f if sar_f > 0 else 1.0), float(height)
    short = min(disp_w, disp_h)
    target = min(_round_to(render_size, multiple), multiple * math.ceil(short / multiple))
    scale = target / short
    return _round_to(disp_h * scale, multiple), _round_to(disp_w * scale, multiple)


def _rotation_k(rotation: int) -> int:
    """torch.rot90 turns (counter-clockwise) that bring a stored frame upright. ``rotation`` is
    PyAV's ``VideoFrame.rotation``: the display matrix's counter-clockwise angle in degrees."""
    return (int(round(rotation / 90.0))) % 4


@dataclass
class _Pending:
    src: object  # colorize.io.SourceFrame
    l_full: torch.Tensor
    l_work: torch.Tensor  # display orientation, on the model device


def _option_flag(name: str, value: object) -> str:
    """The CLI spelling of a model option: saturation_boost=False -> --no-saturation-boost."""
    flag = name.replace("_", "-")
    return f"--no-{flag}" if value is False else f"--{flag}"


class Runner:
    """Colourize jobs with one model built once (lazily, on the first job that needs it)."""

    def __init__(self, config: RunConfig, on_event: EventSink | None = None) -> None:
        from colorize.models.registry import UnknownModelError, get_model_info, model_options

        self.config = config
        self.on_event = on_event or (lambda e: None)
        try:
            self.info = get_model_info(config.model)
        except UnknownModelError as exc:
            raise UsageError(str(exc)) from exc
        self.device = resolve_device(config.device)
        self.dtype = compute_dtype(self.device, config.precision)
        self.ref_specs = [s for r in config.references for s in parse_ref(r)]
        if self.info.needs_reference and not self.ref_specs:
            raise UsageError(f"model {self.info.name!r} needs a colour reference: add --ref IMAGE")
        if self.ref_specs and not self.info.needs_reference:
            raise UsageError(
                f"model {self.info.name!r} does not take references; leave out --model to use the "
                "exemplar model, or leave out --ref"
            )
        unknown = [(k, v) for k, v in config.extra_model_options if k not in model_options(config.model)]
        if unknown:
            flags = ", ".join(_option_flag(k, v) for k, v in unknown)
            raise UsageError(f"model {self.info.name!r} does not take {flags}")
        if config.diverse > 1 and not self.info.supports_diverse:
            raise UsageError(f"model {self.info.name!r} does not produce diverse outputs (--diverse)")
        self.model = None
        # Where a film's segments are rendered: None = here, one after another; an executor from
        # colorize.pipeline.executors (--executor ray) sends them to other processes or machines.
        self.executor = None
        self.render_size = config.render_size or self.info.default_render_size
        # Loaded now, so an unreadable reference is a usage error before any work is done.
        self.references: list[Reference] = [load_reference(s, self.render_size) for s in self.ref_specs]

    # ------------------------------------------------------------------------------------ model
    def build(self) -> None:
        """Build the model once (idempotent)."""
        if self.model is not None:
            return
        from colorize.models.registry import WeightsError, create_model

        try:
            model = create_model(
                self.config.model, device=self.device, dtype=self.dtype,
                weights=self.config.weights, **self.config.model_options(),
            )
        except WeightsError as exc:
            raise ModelError(str(exc)) from exc
        except TypeError as exc:
            options = self.config.model_options()
            if not options or "argument" not in str(exc):
                raise
            names = ", ".join("--" + k.replace("_", "-") for k in options)
            raise UsageError(f"model {self.info.name!r} does not take {names}") from exc
        if model.num_outputs != self.config.diverse:
            raise ModelError(
                f"model {self.info.name!r} gives {model.num_outputs} output(s) per frame, "
                f"{self.config.diverse} asked for"
            )
        if self.config.render_size is None and model.info.default_render_size != self.render_size:
            # The weights file names its own working size (a selfreg file calibrated at 192 px).
            self.render_size = model.info.default_render_size
            self.references = [load_reference(s, self.render_size) for s in self.ref_specs]
        self.model = model

    @property
    def weights_sha256(self) -> str | None:
        return getattr(self.model, "weights_sha256", None) if self.model is not None else None

    # ------------------------------------------------------------------------------------ batch
    def run(self, jobs: list[Job]) -> Iterator[ev.FileResult]:
        """Process every job in order, yielding one result each. Errors of one input become its
        result; KeyboardInterrupt (and model errors) propagate after cleanup."""
        will_run = [job.error is None and not self._will_skip(job) for job in jobs]
        frames = [_estimate(j.info) for j, run in zip(jobs, will_run) if run]
        total = sum(frames) if all(f is not None for f in frames) else None
        self.on_event(ev.BatchStarted(files=len(jobs), frames=total))
        for pos, (job, run) in enumerate(zip(jobs, will_run), 1):
            sets = self.config.diverse > 1 and self.config.pick == "all" and job.output is not None
            candidates = tuple(self._outputs_for(job.output)) if sets else ()
            self.on_event(ev.FileStarted(job.input, job.output, pos, len(jobs), _estimate(job.info), run, candidates))
            result = self.run_job(job)
            self.on_event(ev.FileFinished(result))
            yield result

    def _will_skip(self, job: Job) -> bool:
        return not self.config.overwrite and all(p.exists() for p in self._outputs_for(job.output))

    def _outputs_for(self, output: Path) -> list[Path]:
        if self.config.diverse > 1 and self.config.pick == "all":
            return candidate_paths(output, self.config.diverse)
        return [output]

    def run_job(self, job: Job) -> ev.FileResult:
        from colorize.io import MediaError

        base = ev.FileResult(job.input, job.output, "error", model=self.config.model)
        if job.error is not None:
            base.error = job.error
            return base
        finals = self._outputs_for(job.output)
        if self.config.diverse > 1 and self.config.pick == "all":
            base.candidates = tuple(finals)
        if self._will_skip(job):
            base.status = "skipped"
            base.error = None
            return base
        t0 = time.perf_counter()
        try:
            self._prepare_folder(job.output.parent)
        except MediaError as exc:
            base.error = _one_line(exc, job.input)
            return base
        self.build()  # a model that cannot be built stops the batch (ModelError / UsageError)
        base.weights_sha256 = self.weights_sha256
        try:
            result = self._colorize(job, finals, base)
        except (MediaError, OSError) as exc:
            base.error = _one_line(exc, job.input)
            base.seconds = time.perf_counter() - t0
            return base
        except Exception as exc:  # noqa: BLE001 - one bad input must not stop a batch
            base.error = f"{job.input}: {type(exc).__name__}: {_one_line(exc, job.input)}"
            base.exception = exc
            base.seconds = time.perf_counter() - t0
            return base
        result.seconds = time.perf_counter() - t0
        return result

    @staticmethod
    def _prepare_folder(folder: Path) -> None:
        from colorize.io import MediaError

        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MediaError(f"cannot create the output folder {folder}: {exc.strerror or exc}") from exc
        if not os.access(folder, os.W_OK | os.X_OK):
            raise MediaError(f"the output folder {folder} is not writable")

    # ------------------------------------------------------------------------------- one input
    def _colorize(self, job: Job, finals: list[Path], result: ev.FileResult) -> ev.FileResult:
        from colorize.color.merge import full_l, rgb_to_work_l
        from colorize.io import EncodeOptions, MediaError, MediaWriter, iter_frames
        from colorize.pipeline.render import writer_ab

        cfg, info, model = self.config, job.info, self.model
        d = cfg.diverse
        work_hw = working_size(info.width, info.height, info.sar, self.render_size, model.size_multiple)
        rot_k = _rotation_k(getattr(info, "rotation", 0) or 0)
        device = self.device
        enc_kw = {k: v for k, v in (("codec", cfg.codec), ("crf", cfg.crf), ("preset", cfg.preset)) if v is not None}
        options = EncodeOptions(**enc_kw)
        from colorize.pipeline.segmented import run_segmented, uses_segments

        if uses_segments(cfg, info):  # resumable segments, joined at the end (pipeline/segmented.py)
            return run_segmented(self, job, finals, result, work_hw, rot_k)

        def prepared() -> Iterator[tuple[object, torch.Tensor, torch.Tensor]]:
            with torch.inference_mode():
                for src in iter_frames(job.input, info):
                    yield src, rgb_to_work_l(src.rgb, work_hw), full_l(src.rgb)

        t_start = time.perf_counter()
        timings = {"model_s": 0.0}
        writers: list = []
        decode = encode = None
        sheet_file: Path | None = None
        tally = SaturationTally(d)
        sheet = ContactSheet(sheet_indices(_estimate(info), cfg.contact_sheet_frames)) if (
            d > 1 and cfg.pick == "all") else None
        chooser = ReferenceChooser(self.references, info.fps) if self.references else None
        shots = ShotStarts(cfg.scene_threshold, chooser)
        pending: dict[int, _Pending] = {}
        done = 0
        n_in = 0
        cuts: list[int] = []

        def write(src, l_full: torch.Tensor, ab: torch.Tensor) -> None:
            with torch.inference_mode():  # every writer of a job has the same format
                arr, l_np = writer_ab(ab, l_full, rot_k, writers[0].chroma_size)
            for w, a in zip(writers, arr):
                w.write(src, a, l_np)

        def emit(ready: Iterable[tuple[int, torch.Tensor]]) -> None:
            nonlocal done
            for index, ab in ready:
                item = take_pending(pending, index, ab, d, cfg.model)
                if d > 1:
                    rgb = candidates_rgb(item.l_work, ab)
                    tally.add(rgb)
                    if sheet is not None and sheet.wants(index):
                        sheet.add(index, item.l_work, rgb)
                encode.put(item.src, item.l_full, ab)
                done += 1
                self.on_event(ev.FrameDone(job.input, done))

        current_ref: Reference | None = None
        try:
            # --pick saturation: D temporaries for the same final name; only the winner is renamed.
            writer_finals = finals if len(finals) == d else [finals[0]] * d
            for final in writer_finals:
                writers.append(MediaWriter(final, info, options))
            decode = BackgroundIterator(prepared, cfg.queue_size, name="decode")
            encode = BackgroundWorker(write, cfg.queue_size, name="encode")
            model.reset()
            with torch.inference_mode():
                for src, l_work, l_full in decode:
                    l_work = l_work.to(device, torch.float32)
                    if rot_k:
                        l_work = torch.rot90(l_work, rot_k, dims=(-2, -1))
                    seconds = float(src.pts * src.time_base) if src.pts is not None and src.time_base else None
                    cut = shots.is_cut(src.index, seconds, l_work)
                    t_model = time.perf_counter()
                    if cut:
                        cuts.append(src.index)
                        emit(model.flush())
                        model.reset()
                    if chooser is not None and (n_in == 0 or cut):
                        ref = chooser.choose(src.index, seconds, l_work,
                                             lambda l, lab: model.reference_score(l, lab.to(device)))
                        if ref is not current_ref:
                            model.set_reference(ref.lab.to(device))
                            current_ref = ref
                    pending[src.index] = _Pending(src, l_full, l_work)
                    n_in += 1
                    ready = model.push(src.index, l_work)
                    timings["model_s"] += time.perf_counter() - t_model
                    emit(ready)
                t_model = time.perf_counter()
                ready = model.flush()
                timings["model_s"] += time.perf_counter() - t_model
                emit(ready)
            if pending:
                raise ModelError(f"model {cfg.model!r} never returned frames {sorted(pending)[:5]}")
            if n_in == 0:
                raise MediaError(f"{job.input}: no video frames could be decoded")
            expected = info.frames
            encode.finish()
            timings["decode_wait_s"] = decode.wait_s
            timings["encode_s"] = encode.busy_s
            timings["encode_wait_s"] = encode.wait_s

            picked = None
            keep = list(range(len(writers)))
            if d > 1 and cfg.pick == "saturation":
                picked = tally.best()
                keep = [picked]
            written: list[Path] = []
            if sheet is not None:
                sheet_file = contact_sheet_path(job.output)
            timings["total_s"] = time.perf_counter() - t_start
            record = self._sidecar(job, result, finals, timings, n_in, expected, cuts, chooser, picked, tally)
            side = sidecar_path(job.output)
            for i, w in enumerate(writers):
                if i not in keep:
                    w.abort()
            for i in keep:
                writers[i].commit()
                written.append(writer_finals[i])
            writers = []
            if sheet_file is not None and sheet.save(sheet_file, tally.means):
                written.append(sheet_file)
            atomic_write_bytes(side, sidecar_bytes(record))
            written.append(side)
        except BaseException:
            if encode is not None:
                encode.cancel()
            if decode is not None:
                decode.close()
            for w in writers:
                try:
                    w.abort()
                except Exception:  # noqa: BLE001 - the original error matters more
                    pass
            raise
        result.status = "done"
        result.frames = n_in
        result.outputs = tuple(written)
        result.shots = chooser.shots if chooser is not None else []
        if d > 1:
            result.saturations = tally.means
            result.picked = picked
        return result

    def _sidecar(self, job, result, finals, timings, frames, expected, cuts, chooser, picked, tally) -> dict:
        model = self.model
        record = {
            "colorize": environment(),
            "input": str(job.input),
            "output": str(job.output),
            "outputs": [str(p) for p in finals],
            "model": {
                "name": self.config.model,
                "weights": str(self.config.weights) if self.config.weights else "shipped",
                **weights_record(model),
                "render_size": self.render_size,
                "size_multiple": model.size_multiple,
            },
            "references": [r.describe() for r in self.references],
            "shots": chooser.shots if chooser is not None else [{"first_frame": 0}] + [{"first_frame": c} for c in cuts],
            "options": self.config.as_dict(),
            "device": {"name": str(self.device), "dtype": str(self.dtype).replace("torch.", "")},
            "frames": frames,
            "frames_expected": expected,
            "timings": {k: round(v, 4) for k, v in timings.items()},
            "probe": job.info.as_dict() if hasattr(job.info, "as_dict") else None,
        }
        if picked is not None or self.config.diverse > 1:
            record["diverse"] = {
                "count": self.config.diverse,
                "pick": self.config.pick,
                "picked": picked,
                "mean_saturation": tally.means,
            }
        return record


def _estimate(info) -> int | None:
    if info is None:
        return None
    est = getattr(info, "frame_estimate", None)
    return est if est is not None else info.frames


def _one_line(exc: BaseException, path: Path) -> str:
    if isinstance(exc, OSError) and not str(exc).startswith(str(path)):
        where = exc.filename or path
        return f"{where}: {exc.strerror or exc}"
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
