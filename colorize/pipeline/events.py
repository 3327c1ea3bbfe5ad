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
    shots: list[dict] = field(default_factory=list)
    picked: int | None = None  # --pick saturation: the winning candidate
    saturations: list[float] = field(default_factory=list)
    exception: BaseException | None = field(default=None, repr=False)  # for --debug tracebacks

    @property
    def ok(self) -> bool:
        return self.status in ("done", "skipped")

    def as_json(self) -> dict:
        d = {
            "input": str(self.input),
            "output": str(self.output) if self.output is not None else None,
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
        if self.picked is not None:
            d["picked"] = self.picked
            d["saturations"] = [round(s, 6) for s in self.saturations]
        return d


@dataclass(frozen=True)
class BatchStarted:
    files: int
    frames: int | None  # total expected frames when every probe knew its count


@dataclass(frozen=True)
class FileStarted:
    input: Path
    output: Path | None
    position: int  # 1-based
    files: int
    frames: int | None


@dataclass(frozen=True)
class FrameDone:
    input: Path
    frames_done: int


@dataclass(frozen=True)
class FileFinished:
    result: FileResult
