"""What the runner reports while it works (the CLI renders these as progress bars or JSON).

The runner never prints: it calls ``on_event(event)`` with one of these dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class FileResult:
    """The outcome of one input; ``as_json()`` is the ``--json`` line."""

    input: Path
    output: Path | None
    status: str  # "done" | "skipped" | "error" | "interrupted"
    frames: int = 0
    seconds: float = 0.0
    model: str | None = None
    weights_sha256: str | None = None
    error: str | None = None
    outputs: tuple[Path, ...] = ()  # every file written (candidates, contact sheet, sidecar)
    candidates: tuple[Path, ...] = ()  # --pick all: the N files the set is made of (``output`` is its base name)
    shots: list[dict] = field(default_factory=list)
    picked: int | None = None  # --pick saturation: the winning candidate (None with --pick all)
    saturations: list[float] = field(default_factory=list)
    exception: BaseException | None = field(default=None, repr=False)  # for --debug tracebacks

    @property
    def ok(self) -> bool:
        return self.status in ("done", "skipped")

    @property
    def media(self) -> tuple[Path, ...]:
        """The pictures this input has (or would have) produced, as a user looks for them: the
        output, or with ``--pick all`` each candidate and, once written, the contact sheet."""
        if self.status == "done" and self.outputs:
            return tuple(p for p in self.outputs if not p.name.endswith(".colorize.json"))
        if self.candidates:
            return self.candidates
        return (self.output,) if self.output is not None else ()

    def as_json(self) -> dict:
        if self.candidates:  # --pick all: name the files written, not the set's base name
            output: object = [str(p) for p in self.candidates]
        else:
            output = str(self.output) if self.output is not None else None
        d = {
            "input": str(self.input),
            "output": output,
            "status": self.status,
            "frames": self.frames,
            "seconds": round(self.seconds, 3),
            "model": self.model,
            "weights_sha256": self.weights_sha256,
            "error": self.error,
        }
        if self.outputs:
            d["outputs"] = [str(p) for p in self.outputs]
        if self.shots:
            d["shots"] = self.shots
        if self.saturations:  # --diverse N: picked is null with --pick all (every candidate kept)
            d["picked"] = self.picked
            d["saturations"] = [round(s, 6) for s in self.saturations]
        return d


@dataclass(frozen=True)
class BatchStarted:
    files: int
    frames: int | None  # frames to colourize (inputs to skip left out), when every probe knew its count


@dataclass(frozen=True)
class FileStarted:
    input: Path
    output: Path | None
    position: int  # 1-based
    files: int
    frames: int | None
    # False when the runner already knows it will not colourize this input (its output exists, or it
    # could not be probed): its frames are then not part of BatchStarted.frames.
    will_run: bool = True
    candidates: tuple[Path, ...] = ()  # --pick all: the files the set will be written as


@dataclass(frozen=True)
class FrameDone:
    input: Path
    frames_done: int


@dataclass(frozen=True)
class Notice:
    """Something the user should read about one input (a resumed or restarted segmented run)."""

    input: Path
    text: str


@dataclass(frozen=True)
class FileFinished:
    result: FileResult
