"""Colour references for exemplar models: parsing ``--ref`` and choosing one per shot.

``--ref`` forms:
    still.jpg                       a reference for any shot
    stills/                         every image in the folder (not recursive)
    still.jpg@00:01:10-00:02:30     a reference bound to a time range (HH:MM:SS[.fff], MM:SS,
    still.jpg@1500-3200             HH:MM:SS:FF at the film's rate, or frame numbers; an end may
    still.jpg@00:05:00-             be left open). Ranges are inclusive of the start, exclusive
                                    of the end.

Per shot, a reference whose range contains the shot's first frame wins; otherwise the free
reference whose :meth:`~colorize.models.base.StreamColorizer.reference_score` against that
frame is highest. Range boundaries also start a new shot, so a range that begins mid-shot takes
effect on its first frame.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import torch

from colorize.pipeline.errors import UsageError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp"})


class ReferenceError(UsageError):
    """A --ref that is missing, unreadable or malformed (a usage error)."""


_TC = r"(?:\d+(?::\d{1,2}){1,3}(?:\.\d+)?|\d+)"
_RANGE = re.compile(rf"^(?P<start>{_TC})-(?P<end>{_TC})?$")


@dataclass(frozen=True)
class TimePoint:
    """A frame number (``frame``) or a time in seconds (``seconds``), exactly one set."""

    frame: int | None = None
    seconds: float | None = None
    smpte_frames: int | None = None  # the FF of HH:MM:SS:FF, resolved against the film's fps

    def frame_at(self, fps: Fraction | None) -> int | None:
        """The frame index for a constant ``fps`` (None when a time cannot be placed)."""
        if self.frame is not None:
            return self.frame
        if fps is None or fps <= 0:
            return None
        return int(round(self.seconds * float(fps))) + (self.smpte_frames or 0)

    def seconds_at(self, fps: Fraction | None) -> float | None:
        if self.seconds is not None:
            extra = (self.smpte_frames or 0) / float(fps) if fps else 0.0
            return self.seconds + extra
        if fps is None or fps <= 0:
            return None
        return self.frame / float(fps)


def parse_timepoint(text: str) -> TimePoint:
    """``"1500"`` -> frame 1500; ``"01:10"``, ``"00:01:10.5"`` -> seconds; ``"00:01:10:12"`` SMPTE."""
    if re.fullmatch(r"\d+", text):
        return TimePoint(frame=int(text))
    parts = text.split(":")
    if len(parts) == 4:  # HH:MM:SS:FF
        h, m, s, ff = parts
        if "." in ff:
            raise ReferenceError(f"bad timecode {text!r}: frames in HH:MM:SS:FF are whole numbers")
        secs = int(h) * 3600 + int(m) * 60 + float(s)
        return TimePoint(seconds=secs, smpte_frames=int(ff))
    if len(parts) not in (2, 3):
        raise ReferenceError(f"bad timecode {text!r}; use HH:MM:SS[.fff], MM:SS or a frame number")
    nums = [float(p) for p in parts]
    if any(n >= 60 for n in nums[1:]):
        raise ReferenceError(f"bad timecode {text!r}: minutes and seconds must be below 60")
    secs = 0.0
    for n in nums:
        secs = secs * 60 + n
    return TimePoint(seconds=secs)


@dataclass(frozen=True)
class RefSpec:
    path: Path
    start: TimePoint | None = None
    end: TimePoint | None = None  # None with a start: open to the end of the film

    @property
    def has_range(self) -> bool:
        return self.start is not None


def parse_ref(spec: str) -> list[RefSpec]:
    """One ``--ref`` value -> its reference specs (a folder gives several). Checks existence."""
    path_text, rng = spec, None
    if "@" in spec:
        head, tail = spec.rsplit("@", 1)
        if _RANGE.match(tail):
            path_text, rng = head, _RANGE.match(tail)
        elif not Path(spec).exists():
            raise ReferenceError(
                f"--ref {spec!r}: bad time range {tail!r}; use START-END with HH:MM:SS[.fff] "
                "timecodes or frame numbers, e.g. still.jpg@00:01:10-00:02:30"
            )
    path = Path(path_text)
    if not path.exists():
        raise ReferenceError(f"--ref {path}: no such file or folder")
    if path.is_dir():
        if rng is not None:
            raise ReferenceError(f"--ref {spec!r}: a time range needs one still, not a folder")
        stills = sorted(
            p for p in path.iterdir()
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
        )
        if not stills:
            raise ReferenceError(f"--ref {path}: the folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return [RefSpec(p) for p in stills]
    if rng is None:
        return [RefSpec(path)]
    start = parse_timepoint(rng.group("start"))
    end = parse_timepoint(rng.group("end")) if rng.group("end") else None
    if end is not None and start.frame is not None and end.frame is not None and end.frame <= start.frame:
        raise ReferenceError(f"--ref {spec!r}: the range ends before it starts")
    if end is not None and start.seconds is not None and end.seconds is not None and (
        end.seconds + (end.smpte_frames or 0) * 1e-6 <= start.seconds + (start.smpte_frames or 0) * 1e-6
    ):
        raise ReferenceError(f"--ref {spec!r}: the range ends before it starts")
    return [RefSpec(path, start, end)]


@dataclass
class Reference:
    """A loaded reference: its spec, sha256 and Lab image (1, 3, H, W) on CPU, float32."""

    spec: RefSpec
    sha256: str
    lab: torch.Tensor

    @property
    def path(self) -> Path:
        return self.spec.path

    def covers(self, index: int, seconds: float | None, fps: Fraction | None) -> bool:
        """Whether frame ``index`` (at ``seconds`` when known) lies in this reference's range."""
        s = self.spec
        if s.start is None:
            return False
        if s.start.frame is not None and (s.end is None or s.end.frame is not None):
            return index >= s.start.frame and (s.end is None or index < s.end.frame)
        t = seconds if seconds is not None else (index / float(fps) if fps else None)
        if t is None:
            return False
        lo = s.start.seconds_at(fps)
        hi = s.end.seconds_at(fps) if s.end is not None else None
        if lo is None:
            return False
        eps = 1e-6
        return t >= lo - eps and (hi is None or t < hi - eps)

    def describe(self) -> dict:
        d = {"path": str(self.path), "sha256": self.sha256}
        if self.spec.start is not None:
            d["range"] = {"start": _tp_dict(self.spec.start), "end": _tp_dict(self.spec.end)}
        return d


def _tp_dict(tp: TimePoint | None) -> dict | None:
    if tp is None:
        return None
    if tp.frame is not None:
        return {"frame": tp.frame}
    d = {"seconds": tp.seconds}
    if tp.smpte_frames:
        d["frames"] = tp.smpte_frames
    return d


class ReferenceChooser:
    """Picks the reference for each shot of one film; remembers the choices for the sidecar."""

    def __init__(self, refs: list[Reference], fps: Fraction | None) -> None:
        self.refs = refs
        self.fps = fps
        self.shots: list[dict] = []

    def ranged_at(self, index: int, seconds: float | None) -> Reference | None:
        for ref in self.refs:
            if ref.covers(index, seconds, self.fps):
                return ref
        return None

    def range_key(self, index: int, seconds: float | None) -> int | None:
        """Identity of the range covering a frame; a change of key starts a new shot."""
        ref = self.ranged_at(index, seconds)
        return None if ref is None else id(ref)

    def choose(self, index: int, seconds: float | None, l: torch.Tensor, score_fn) -> Reference:
        """The reference for the shot starting at frame ``index`` with grey frame ``l``."""
        ranged = self.ranged_at(index, seconds)
        scores: dict[str, float] = {}
        if ranged is not None:
            chosen, why = ranged, "time range"
        else:
            free = [r for r in self.refs if not r.spec.has_range] or self.refs
            if len(free) == 1:
                chosen, why = free[0], "only reference"
            else:
                for r in free:
                    scores[str(r.path)] = float(score_fn(l, r.lab))
                chosen = max(free, key=lambda r: scores[str(r.path)])
                why = "best match"
        record = {"first_frame": index, "reference": str(chosen.path), "reason": why}
        if seconds is not None:
            record["start_seconds"] = round(seconds, 6)
        if scores:
            record["scores"] = {k: round(v, 6) for k, v in scores.items()}
        self.shots.append(record)
        return chosen


def load_reference(spec: RefSpec, short_side: int) -> Reference:
    """Read a still (8 or 16 bit), convert to Lab, area-downscale to ``short_side`` at most."""
    from colorize.color.lab import rgb_to_lab
    from colorize.io import MediaError, iter_frames, probe
    from colorize.models.registry import sha256_file

    try:
        info = probe(spec.path)
        first = next(iter(iter_frames(spec.path, info)), None)
    except MediaError as exc:
        raise ReferenceError(f"--ref {spec.path}: {exc}") from exc
    except OSError as exc:
        raise ReferenceError(f"--ref {spec.path}: cannot read it ({exc.strerror or exc})") from exc
    if first is None:
        raise ReferenceError(f"--ref {spec.path}: no picture in it")
    rgb = first.rgb
    scale = 65535.0 if rgb.dtype.itemsize == 2 else 255.0
    x = torch.from_numpy(rgb.astype("float32") / scale).permute(2, 0, 1).unsqueeze(0)
    h, w = x.shape[-2:]
    if min(h, w) > short_side:
        f = short_side / min(h, w)
        size = (max(1, round(h * f)), max(1, round(w * f)))
        x = torch.nn.functional.interpolate(x, size=size, mode="area")
    return Reference(spec=spec, sha256=sha256_file(spec.path), lab=rgb_to_lab(x).contiguous())
