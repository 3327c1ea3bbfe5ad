"""``--preview N``: a few frames spread over a film, colourized as the full run would, on one sheet.

For each of N times spread evenly over the film the reader seeks to the keyframe before it (a
container seek, never a decode from the start), decodes forward, converts only the frames it keeps
(a few warm-up frames before the target, the target, and as many after it as the model holds back
for its look-ahead) and runs them through the same model, shot logic and reference choice as the
runner: the model is reset and the reference chosen at the first warm-up frame and again at any
cut detected inside the window. Temporal models (``lstm``'s window, ``exemplar``'s previous output,
``selfreg``'s refine pass) so see the target with the state a full run would have given it, up
to cuts earlier in the shot than the warm-up reaches.

The output is one PNG, ``<input stem>_preview.png`` in the output folder (beside the film by
default): a header, then one row per sampled frame: the grey input and the colourized output (one
column per candidate with ``--diverse N``), labelled with the frame number, the timecode and,
with references, the reference that shot took and why. It is rewritten on every preview run.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from colorize.pipeline import events as ev
from colorize.pipeline.errors import ModelError
from colorize.pipeline.inputs import Job

DEFAULT_WARMUP = 8  # frames colourized and discarded before each target (lstm's window is 5)
MAX_LOOKAHEAD = 16  # frames pushed after a target at most, waiting for the model to return it
THUMB_H = 180
LABEL_H = 22
HEADER_H = 30
GAP = 4


def preview_path(job: Job) -> Path:
    """``film.mp4`` -> ``film_preview.png`` in the job's output folder (beside the film by default)."""
    folder = job.output.parent if job.output is not None else job.input.parent
    return folder / f"{job.input.stem}_preview.png"


def sample_times(duration_s: float, count: int) -> list[float]:
    """``count`` times (seconds from the film's start) at the middles of equal slices."""
    return [(i + 0.5) * duration_s / count for i in range(count)]


def timecode(seconds: float) -> str:
    ms = int(round(seconds * 1000))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


# ------------------------------------------------------------------------------------------ decode
class _Window:
    """Decoded frames around one sample: warm-up frames, the target (position ``target``), then
    look-ahead frames. Converted to RGB only when asked for: the look-ahead is rarely all used."""

    def __init__(self, raw: list, target: int, convert, fps: float) -> None:
        self.raw = raw  # (seconds or None, av.VideoFrame); for stills: SourceFrames
        self.target = target
        self._convert = convert
        self._fps = fps
        self._cache: dict[int, object] = {}

    def __len__(self) -> int:
        return len(self.raw)

    def source(self, i: int):
        """The i-th frame as a ``SourceFrame``; indices estimated from timestamps, kept rising."""
        if i not in self._cache:
            if self._convert is None:
                self._cache[i] = self.raw[i]
            else:
                sec, frame = self.raw[i]
                index = int(round(sec * self._fps)) if sec is not None else 0
                if i > 0:
                    index = max(index, self.source(i - 1).index + 1)
                self._cache[i] = self._convert(frame, index)
        return self._cache[i]


class SeekingReader:
    """One open container; :meth:`window` seeks to a keyframe and decodes forward from there."""

    def __init__(self, path: Path, info) -> None:
        import av

        from colorize.io import MediaError
        from colorize.io.errors import describe_av_error
        from colorize.io.probe import pick_video_stream

        self.path, self.info = Path(path), info
        try:
            self.container = av.open(str(path), metadata_errors="replace")
        except av.FFmpegError as err:
            raise MediaError(f"cannot open ({describe_av_error(err)})", path) from err
        streams = self.container.streams
        stream = streams[info.video_index] if info.video_index < len(streams) else None
        if stream is None or stream.type != "video":
            stream = pick_video_stream(self.container)
        stream.thread_type = "AUTO"
        self.stream = stream
        self.time_base = Fraction(stream.time_base) if stream.time_base else None
        self.start_s = float(stream.start_time * stream.time_base) if (
            stream.start_time is not None and stream.time_base) else 0.0
        self.fps = float(info.fps) if info.fps else 25.0
        self.decoded = 0  # frames decoded in all (the cost of the seeks)

    def close(self) -> None:
        self.container.close()

    def _seconds(self, frame) -> float | None:
        if frame.pts is None or frame.time_base is None:
            return None
        return float(frame.pts * frame.time_base) - self.start_s

    def window(self, t: float, before: int, after: int) -> _Window | None:
        """Frames around the frame nearest to ``t`` seconds (from the film's start; the first
        one less than half a frame before ``t``, or the last frame when ``t`` lies past the end):
        up to ``before`` earlier ones and up to ``after`` later ones. None for an empty stream."""
        import av

        from colorize.io import MediaError, SourceFrame
        from colorize.io.decode import frame_to_rgb
        from colorize.io.errors import describe_av_error

        # Aim a little earlier than the first warm-up frame: timestamps of real files are ragged.
        aim = max(0.0, t - (before + 2) / self.fps)
        found = self._decode_window(t, before, after, aim if self.time_base else None)
        if found is None and self.time_base and aim > 0:
            # The seek landed after the target (a bad index): decode from the start (slow, right).
            found = self._decode_window(t, before, after, None)
        if found is None:
            return None
        warm, target, tail = found

        def convert(frame, index: int):
            if (frame.width, frame.height) != (self.info.width, self.info.height):
                raise MediaError("the picture size changes inside the film; split the file first", self.path)
            return SourceFrame(index=index, pts=frame.pts,
                               time_base=Fraction(frame.time_base) if frame.time_base else None,
                               rgb=frame_to_rgb(frame, self.info), frame=frame)

        return _Window(warm + [target] + tail, len(warm), convert, self.fps)

    def _decode_window(self, t: float, before: int, after: int, aim: float | None):
        """(warm-up, target, tail) as (seconds, av.VideoFrame) after seeking to ``aim`` seconds
        (None: the start of the file); None when the seek landed after ``t`` or nothing decoded."""
        import av

        from colorize.io import MediaError
        from colorize.io.errors import describe_av_error

        eps = 0.5 / self.fps
        try:
            if aim is None:
                self.container.seek(0)
            else:
                offset = int(math.floor((aim + self.start_s) / float(self.time_base)))
                self.container.seek(offset, stream=self.stream, backward=True, any_frame=False)
        except av.FFmpegError as err:
            if aim is None:
                raise MediaError(f"cannot seek in the video ({describe_av_error(err)})", self.path) from err
            return None
        held: deque = deque(maxlen=max(1, before + 1))
        target = None
        tail: list = []
        first = True
        try:
            for frame in self.container.decode(self.stream):
                self.decoded += 1
                sec = self._seconds(frame)
                if first and aim is not None and aim > 0 and sec is not None and sec > t + eps:
                    return None  # landed past the target
                first = False
                if target is None:
                    if sec is not None and sec < t - eps:
                        held.append((sec, frame))
                        continue
                    if sec is None and not held:
                        held.append((sec, frame))
                        continue
                    target = (sec, frame)
                    if after == 0:
                        break
                    continue
                tail.append((sec, frame))
                if len(tail) >= after:
                    break
        except av.FFmpegError as err:
            raise MediaError(f"corrupt video near {timecode(t)} ({describe_av_error(err)})", self.path) from err
        if target is None:
            if not held:
                return None
            target = held.pop()  # t lies past the last frame: the last frame is the sample
        warm = list(held)[-before:] if before > 0 else []
        return warm, target, tail


# ----------------------------------------------------------------------------------------- result
@dataclass
class PreviewResult(ev.FileResult):
    """A :class:`FileResult` whose ``--json`` line adds a ``preview`` record."""

    samples: list[dict] = field(default_factory=list)
    frames_decoded: int = 0
    frames_colourized: int = 0
    film_frames: int | None = None

    def as_json(self) -> dict:
        d = super().as_json()
        d["preview"] = {
            "sheet": str(self.output) if self.output is not None else None,
            "samples": self.samples,
            "frames_decoded": self.frames_decoded,
            "frames_colourized": self.frames_colourized,
            "film_frames": self.film_frames,
        }
        return d


# ------------------------------------------------------------------------------------------ sheet
def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii")


def _put_text(img: np.ndarray, text: str, x: int, y: int, scale: float = 0.45, bold: bool = False) -> None:
    import cv2

    cv2.putText(img, _ascii(text), (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 2 if bold else 1,
                cv2.LINE_AA)


def _thumb(rgb: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> (h, w, 3) uint8 RGB at ``size`` = (h, w)."""
    x = rgb.float().unsqueeze(0)
    if tuple(x.shape[-2:]) != size:
        mode = "area" if x.shape[-2] >= size[0] else "bilinear"
        x = F.interpolate(x, size=size, mode=mode, **({} if mode == "area" else {"align_corners": False}))
    return (x[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()


class PreviewSheet:
    """Rows of (label, grey tile, candidate tiles) laid out under a header; PNG bytes out."""

    def __init__(self, title: str, columns: list[str], display_aspect: float) -> None:
        self.title = title
        self.columns = columns
        self.tile = (THUMB_H, max(16, int(round(THUMB_H * display_aspect))))
        self.rows: list[tuple[str, list[np.ndarray]]] = []

    def add(self, label: str, tiles: list[torch.Tensor]) -> None:
        self.rows.append((label, [_thumb(t, self.tile) for t in tiles]))

    def image(self) -> np.ndarray:
        th, tw = self.tile
        ncol = len(self.columns)
        width = max(ncol * tw + (ncol - 1) * GAP, 480)
        col_h = LABEL_H
        height = HEADER_H + col_h + len(self.rows) * (LABEL_H + th + GAP)
        img = np.full((height, width, 3), 255, np.uint8)
        _put_text(img, self.title, 6, 20, 0.5, bold=True)
        for c, name in enumerate(self.columns):
            _put_text(img, name, c * (tw + GAP) + 4, HEADER_H + 15, 0.45, bold=True)
        y = HEADER_H + col_h
        for label, tiles in self.rows:
            _put_text(img, label, 4, y + 15)
            y += LABEL_H
            for c, tile in enumerate(tiles):
                x = c * (tw + GAP)
                img[y:y + th, x:x + tw] = tile
            y += th + GAP
        return img

    def png(self) -> bytes:
        import cv2

        ok, buf = cv2.imencode(".png", np.ascontiguousarray(self.image()[..., ::-1]))
        if not ok:
            raise RuntimeError("could not encode the preview sheet PNG")
        return buf.tobytes()


# ---------------------------------------------------------------------------------------- preview
class Previewer:
    """Preview jobs with a :class:`~colorize.pipeline.runner.Runner`'s model, references and options."""

    def __init__(self, runner, count: int, warmup: int = DEFAULT_WARMUP) -> None:
        if count < 1:
            raise ValueError(f"preview count must be >= 1, got {count}")
        if warmup < 0:
            raise ValueError(f"warm-up must be >= 0, got {warmup}")
        self.runner = runner
        self.count = count
        self.warmup = warmup

    def run(self, jobs: list[Job]) -> Iterator[ev.FileResult]:
        r = self.runner
        counts = [1 if (j.info is not None and j.info.is_image) else self.count for j in jobs]
        r.on_event(ev.BatchStarted(files=len(jobs), frames=sum(counts)))
        for pos, (job, n) in enumerate(zip(jobs, counts), 1):
            sheet = preview_path(job)
            r.on_event(ev.FileStarted(job.input, sheet, pos, len(jobs), n))
            result = self.run_job(job)
            r.on_event(ev.FileFinished(result))
            yield result

    def run_job(self, job: Job) -> ev.FileResult:
        from colorize.io import MediaError
        from colorize.pipeline.runner import _one_line

        r = self.runner
        sheet_path = preview_path(job)
        result = PreviewResult(job.input, sheet_path, "error", model=r.config.model)
        if job.error is not None:
            result.error = job.error
            result.output = None
            return result
        t0 = time.perf_counter()
        try:
            r._prepare_folder(sheet_path.parent)
        except MediaError as exc:
            result.error = _one_line(exc, job.input)
            return result
        r.build()
        result.weights_sha256 = r.weights_sha256
        try:
            self._preview(job, sheet_path, result)
        except (MediaError, OSError) as exc:
            result.error = _one_line(exc, job.input)
        except Exception as exc:  # noqa: BLE001 - one bad input must not stop a batch
            result.error = f"{job.input}: {type(exc).__name__}: {_one_line(exc, job.input)}"
            result.exception = exc
        else:
            result.status = "done"
        result.seconds = time.perf_counter() - t0
        return result

    # ------------------------------------------------------------------------------- one input
    def _windows(self, job: Job, reader_box: list) -> Iterator[_Window]:
        from colorize.io import iter_frames

        info = job.info
        if info.is_image:
            yield _Window([next(iter(iter_frames(job.input, info)))], 0, None, 1.0)
            return
        reader = SeekingReader(job.input, info)
        reader_box.append(reader)
        duration = info.duration_s
        if not duration and info.frames and info.fps:
            duration = info.frames / float(info.fps)
        if not duration:
            from colorize.io import MediaError

            raise MediaError("the film's duration is unknown: cannot spread preview frames over it", job.input)
        lookahead = MAX_LOOKAHEAD
        last_index = None
        for t in sample_times(duration, self.count):
            w = reader.window(t, self.warmup, lookahead)
            if w is None:
                continue
            index = w.source(w.target).index
            if last_index is not None and index <= last_index:
                continue  # a very short film: two samples fell on the same frame
            last_index = index
            yield w

    def _preview(self, job: Job, sheet_path: Path, result: PreviewResult) -> None:
        from colorize.color.gamut import finish_ab
        from colorize.color.lab import lab_to_rgb
        from colorize.color.merge import full_l
        from colorize.pipeline.references import ReferenceChooser
        from colorize.pipeline.runner import _rotation_k, working_size
        from colorize.pipeline.sidecar import atomic_write_bytes

        r, cfg, info = self.runner, self.runner.config, job.info
        model, device = r.model, r.device
        d = cfg.diverse
        work_hw = working_size(info.width, info.height, info.sar, r.render_size, model.size_multiple)
        rot_k = _rotation_k(getattr(info, "rotation", 0) or 0)
        sar = float(info.sar) if info.sar else 1.0
        aspect = (info.width * (sar if sar > 0 else 1.0)) / info.height
        if rot_k % 2:
            aspect = 1.0 / aspect
        columns = ["input"] + (["output"] if d == 1 else [f"candidate {i}" for i in range(d)])
        title = f"{job.input.name}  |  model {cfg.model}"
        if r.references:
            title += f"  |  {len(r.references)} reference(s)"
        sheet = PreviewSheet(title, columns, aspect)
        chooser = ReferenceChooser(r.references, info.fps) if r.references else None
        readers: list = []
        done = 0
        try:
            for w in self._windows(job, readers):
                ab, shot, pushed = self._colourize_window(w, work_hw, rot_k, chooser, model, device)
                src = w.source(w.target)
                l_full = full_l(src.rgb)  # storage orientation
                with torch.inference_mode():
                    ab_s = torch.rot90(ab, -rot_k, dims=(-2, -1)) if rot_k else ab
                    l_b = l_full.to(ab_s.device).unsqueeze(0).expand(d, -1, -1, -1)
                    ab_full = finish_ab(ab_s.float(), l_b.float())  # as the writer gets it
                    rgb = lab_to_rgb(torch.cat((l_b.float(), ab_full.float()), dim=1))
                    grey = torch.from_numpy(src.rgb.astype(np.float32) / (65535.0 if src.rgb.dtype == np.uint16
                                                                           else 255.0)).permute(2, 0, 1)
                    tiles = [grey] + list(rgb.cpu())
                    if rot_k:
                        tiles = [torch.rot90(t, rot_k, dims=(-2, -1)) for t in tiles]
                seconds = (float(src.pts * src.time_base) - (readers[0].start_s if readers else 0.0)
                           if src.pts is not None and src.time_base else None)
                record = {"frame": src.index, "seconds": round(seconds, 3) if seconds is not None else None,
                          "warmup": w.target}
                label = f"#{done + 1}  frame {src.index}"
                if seconds is not None:
                    label += f"  {timecode(seconds)}"
                if shot is not None:
                    record["reference"] = shot["reference"]
                    record["reason"] = shot["reason"]
                    label += f"  ref {Path(shot['reference']).name} ({shot['reason']})"
                sheet.add(label, tiles)
                result.samples.append(record)
                done += 1
                r.on_event(ev.FrameDone(job.input, done))
                result.frames_colourized += pushed
        finally:
            for reader in readers:
                result.frames_decoded = reader.decoded
                reader.close()
        if info.is_image:
            result.frames_decoded = 1
        if not done:
            from colorize.io import MediaError

            raise MediaError(f"{job.input}: no video frames could be decoded")
        result.frames = done
        result.film_frames = info.frame_estimate
        result.outputs = (sheet_path,)
        atomic_write_bytes(sheet_path, sheet.png())

    def _colourize_window(self, w: _Window, work_hw, rot_k, chooser, model, device):
        """Run a window through the model like the runner does; the target's ab (D, 2, h, w)
        in display orientation, the shot record (reference, reason) it was coloured under and
        the number of frames pushed."""
        from colorize.color.merge import rgb_to_work_l
        from colorize.pipeline.scenes import ShotStarts

        cfg = self.runner.config
        shots = ShotStarts(cfg.scene_threshold, chooser)
        want = w.source(w.target).index
        got = None
        shot = None
        current_ref = None
        with torch.inference_mode():
            model.flush()
            model.reset()
            pushed = 0
            for n in range(len(w)):
                src = w.source(n)
                l_work = rgb_to_work_l(src.rgb, work_hw).to(device, torch.float32)
                if rot_k:
                    l_work = torch.rot90(l_work, rot_k, dims=(-2, -1))
                seconds = float(src.pts * src.time_base) if src.pts is not None and src.time_base else None
                cut = shots.is_cut(src.index, seconds, l_work)
                if cut:
                    if n > w.target:  # the target's shot ends here: the runner flushes at a cut
                        got = got if got is not None else _find(model.flush(), want)
                        break
                    model.flush()
                    model.reset()
                if chooser is not None and (n == 0 or cut) and n <= w.target:
                    ref = chooser.choose(src.index, seconds, l_work,
                                         lambda l, lab: model.reference_score(l, lab.to(device)))
                    shot = chooser.shots[-1]
                    if ref is not current_ref:
                        model.set_reference(ref.lab.to(device))
                        current_ref = ref
                ready = model.push(src.index, l_work)
                pushed += 1
                if n >= w.target:
                    got = got if got is not None else _find(ready, want)
                    if got is not None:
                        break
            if got is None:
                got = _find(model.flush(), want)
            else:
                model.flush()
            model.reset()
        if got is None:
            raise ModelError(f"model {cfg.model!r} never returned frame {want}")
        if got.dim() != 4 or got.shape[0] != cfg.diverse or got.shape[1] != 2:
            raise ModelError(f"model {cfg.model!r} returned ab of shape {tuple(got.shape)}, "
                             f"expected ({cfg.diverse}, 2, H, W)")
        return got, shot, pushed


def _find(ready, index: int):
    for i, ab in ready:
        if i == index:
            return ab
    return None
