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


class Reporter:
    """Quiet reporter: only one-line error messages."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr

    def __call__(self, event: object) -> None:
        pass

    def message(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def close(self) -> None:
        pass


class PlainReporter(Reporter):
    """Plain lines for logs and pipes: one when a file starts, every ``interval`` s, one at the end."""

    def __init__(self, stream: TextIO | None = None, interval: float = 10.0) -> None:
        super().__init__(stream)
        self.interval = interval
        self._file_t0 = 0.0
        self._last = 0.0
        self._frames: int | None = None
        self._name = ""

    def __call__(self, event: object) -> None:
        now = time.monotonic()
        if isinstance(event, ev.FileStarted):
            self._file_t0 = self._last = now
            self._frames = event.frames
            self._name = str(event.input)
            total = f"{event.frames} frames" if event.frames else "frames unknown"
            target = f" -> {event.output}" if event.output is not None else ""
            self.message(f"[{event.position}/{event.files}] {event.input}{target} ({total})")
        elif isinstance(event, ev.FrameDone):
            if now - self._last >= self.interval:
                self._last = now
                fps = event.frames_done / max(now - self._file_t0, 1e-9)
                if self._frames:
                    eta = (self._frames - event.frames_done) / fps if fps > 0 else None
                    self.message(
                        f"  {self._name}: {event.frames_done}/{self._frames} frames "
                        f"({100 * event.frames_done / self._frames:.0f}%), {fps:.1f} fps, ETA {_fmt_eta(eta)}"
                    )
                else:
                    self.message(f"  {self._name}: {event.frames_done} frames, {fps:.1f} fps")
        elif isinstance(event, ev.FileFinished):
            r = event.result
            if r.status == "done":
                fps = r.frames / r.seconds if r.seconds > 0 else 0.0
                self.message(f"  done: {r.output} ({r.frames} frames, {r.seconds:.1f} s, {fps:.1f} fps)")
            elif r.status == "skipped":
                self.message(f"  skipped: {r.output} exists (--overwrite to replace it)")


class RichReporter(Reporter):
    """Two rich bars: the current file and the whole batch (frames, fps, ETA)."""

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
            transient=False,
        )
        self.progress.start()
        self._overall = None
        self._file = None
        self._base = 0

    def __call__(self, event: object) -> None:
        p = self.progress
        if isinstance(event, ev.BatchStarted):
            if event.files > 1:
                self._overall = p.add_task(f"all {event.files} files", total=event.frames)
        elif isinstance(event, ev.FileStarted):
            if self._file is not None:
                p.remove_task(self._file)
            name = event.input.name
            self._file = p.add_task(f"[{event.position}/{event.files}] {name[:40]}", total=event.frames)
        elif isinstance(event, ev.FrameDone):
            p.update(self._file, completed=event.frames_done)
            if self._overall is not None:
                p.update(self._overall, completed=self._base + event.frames_done)
        elif isinstance(event, ev.FileFinished):
            r = event.result
            if self._file is not None and r.status == "done":
                p.update(self._file, total=r.frames, completed=r.frames)
            if self._overall is not None:
                frames = r.frames if r.status == "done" else 0
                # Skipped or failed files still count as their expected frames for the batch bar.
                task = p.tasks[[t.id for t in p.tasks].index(self._overall)]
                planned = p.tasks[[t.id for t in p.tasks].index(self._file)].total if self._file is not None else None
                self._base += frames if frames else (planned or 0)
                if task.total is not None or frames:
                    p.update(self._overall, completed=self._base)
            if r.status == "skipped":
                self.message(f"skipped: {r.output} exists (--overwrite to replace it)")

    def message(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def close(self) -> None:
        self.progress.stop()


def make_reporter(quiet: bool, stream: TextIO | None = None) -> Reporter:
    stream = stream or sys.stderr
    if quiet:
        return Reporter(stream)
    if getattr(stream, "isatty", lambda: False)():
        return RichReporter(stream)
    return PlainReporter(stream)
