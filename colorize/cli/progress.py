"""Rendering the runner's events: rich bars on a terminal, plain lines otherwise, or nothing.

Everything goes to stderr; stdout is reserved for ``--json`` lines.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from colorize.pipeline import events as ev


def _fmt_eta(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return "?"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}"


def plural(n: int, word: str) -> str:
    """``plural(1, "frame")`` -> "1 frame", ``plural(3, "frame")`` -> "3 frames"."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _paths(paths) -> str:
    return ", ".join(str(p) for p in paths)


def result_line(r: ev.FileResult) -> str | None:
    """The line an input leaves behind: ``done: OUTPUT (frames, time, fps)`` or ``skipped: OUTPUT
    exists``. A failed input's line is its error message, which the CLI prints (``--quiet`` too)."""
    if r.status == "done":
        fps = r.frames / r.seconds if r.seconds > 0 else 0.0
        return f"done: {_paths(r.media)} ({plural(r.frames, 'frame')}, {r.seconds:.1f} s, {fps:.1f} fps)"
    if r.status == "skipped":
        verb = "exists" if len(r.media) == 1 else "exist"
        return f"skipped: {_paths(r.media)} {verb} (--overwrite to replace)"
    return None


class Reporter:
    """Quiet reporter: only one-line error messages."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr

    def __call__(self, event: object) -> None:
        pass

    def message(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def close(self, summary: bool = True) -> None:
        pass


class _Tally:
    """What the closing summary says: inputs by outcome, frames colourized, wall time."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.counts = {"done": 0, "skipped": 0, "failed": 0}
        self.frames = 0

    def add(self, r: ev.FileResult) -> None:
        key = r.status if r.status in ("done", "skipped") else "failed"
        self.counts[key] += 1
        if r.status == "done":
            self.frames += r.frames

    def summary(self) -> str | None:
        files = sum(self.counts.values())
        if not files:
            return None
        wall = time.monotonic() - self.t0
        fps = self.frames / wall if wall > 0 else 0.0
        counts = ", ".join(f"{n} {k}" for k, n in self.counts.items())
        return (f"{plural(files, 'input')}: {counts}; {plural(self.frames, 'frame')} in {wall:.1f} s "
                f"({fps:.1f} fps)")


class PlainReporter(Reporter):
    """Plain lines for logs and pipes: one when a file starts, every ``interval`` s, one at the end,
    and a summary when the run ends."""

    def __init__(self, stream: TextIO | None = None, interval: float = 10.0) -> None:
        super().__init__(stream)
        self.interval = interval
        self._file_t0 = 0.0
        self._last = 0.0
        self._frames: int | None = None
        self._name = ""
        self.tally = _Tally()

    def __call__(self, event: object) -> None:
        now = time.monotonic()
        if isinstance(event, ev.FileStarted):
            self._file_t0 = self._last = now
            self._frames = event.frames
            self._name = str(event.input)
            total = plural(event.frames, "frame") if event.frames else "frames unknown"
            target = f" -> {_paths(event.candidates or [event.output])}" if event.output is not None else ""
            self.message(f"[{event.position}/{event.files}] {event.input}{target} ({total})")
        elif isinstance(event, ev.FrameDone):
            if now - self._last >= self.interval:
                self._last = now
                fps = event.frames_done / max(now - self._file_t0, 1e-9)
                if self._frames:
                    eta = (self._frames - event.frames_done) / fps if fps > 0 else None
                    self.message(
                        f"  {self._name}: {event.frames_done}/{plural(self._frames, 'frame')} "
                        f"({100 * event.frames_done / self._frames:.0f}%), {fps:.1f} fps, ETA {_fmt_eta(eta)}"
                    )
                else:
                    self.message(f"  {self._name}: {plural(event.frames_done, 'frame')}, {fps:.1f} fps")
        elif isinstance(event, ev.FileFinished):
            self.tally.add(event.result)
            line = result_line(event.result)
            if line is not None:
                self.message("  " + line)

    def close(self, summary: bool = True) -> None:
        text = self.tally.summary() if summary else None
        if text is not None:
            self.message(text)


class RichReporter(Reporter):
    """Two rich bars, the current file and the whole batch (frames, fps, ETA), with a line per input
    printed above them as it finishes; the bars go when the run ends, the lines and a summary stay.

    The batch bar's total is the frames of the inputs that will run (the runner probes them all
    first); it counts only frames actually colourized: a file that fails takes its remaining frames
    off the total instead of adding them as done, so the speed and ETA stay honest."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        from rich.console import Console
        from rich.progress import (
            BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn,
        )
        from rich.text import Text

        class FpsColumn(ProgressColumn):
            def render(self, task) -> Text:
                speed = task.finished_speed or task.speed
                return Text(f"{speed:5.1f} fps" if speed else "  ... fps")

        self.console = Console(file=self.stream)
        self.progress = Progress(
            TextColumn("{task.description}", style="bold"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("frames"),
            FpsColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self.progress.start()
        self.tally = _Tally()
        self._overall = None
        self._file = None
        self._base = 0  # frames colourized in the files finished so far
        self._planned = 0  # the current file's share of the batch total
        self._done = 0  # frames colourized in the current file

    def __call__(self, event: object) -> None:
        p = self.progress
        if isinstance(event, ev.BatchStarted):
            if event.files > 1:
                self._overall = p.add_task(f"all {event.files} inputs", total=event.frames)
        elif isinstance(event, ev.FileStarted):
            if self._file is not None:
                p.remove_task(self._file)
                self._file = None
            self._planned = (event.frames or 0) if event.will_run else 0
            self._done = 0
            if event.will_run:
                name = event.input.name
                self._file = p.add_task(f"[{event.position}/{event.files}] {name[:40]}", total=event.frames)
        elif isinstance(event, ev.FrameDone):
            self._done = event.frames_done
            if self._file is not None:
                p.update(self._file, completed=event.frames_done)
            if self._overall is not None:
                p.update(self._overall, completed=self._base + event.frames_done)
        elif isinstance(event, ev.FileFinished):
            r = event.result
            self.tally.add(r)
            done = r.frames if r.status == "done" else self._done
            if self._file is not None and r.status == "done":
                p.update(self._file, total=r.frames, completed=r.frames)
            if self._overall is not None:
                self._base += done
                total = p.tasks[[t.id for t in p.tasks].index(self._overall)].total
                if total is not None:  # the estimate gives way to what this file really had
                    total += done - self._planned
                p.update(self._overall, completed=self._base, total=total)
            line = result_line(r)
            if line is not None:
                self.message(line)

    def message(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def close(self, summary: bool = True) -> None:
        self.progress.stop()
        text = self.tally.summary() if summary else None
        if text is not None:
            self.message(text)


def make_reporter(quiet: bool, stream: TextIO | None = None) -> Reporter:
    stream = stream or sys.stderr
    if quiet:
        return Reporter(stream)
    if getattr(stream, "isatty", lambda: False)():
        return RichReporter(stream)
    return PlainReporter(stream)
