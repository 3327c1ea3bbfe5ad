"""A film as segments: the plan (which frames, where each shot starts) and the journal that lets a
re-run reuse the segments already finished.

A film is cut only where a shot starts (the scene-cut detector and the reference time ranges decide,
exactly as in a one-piece run); shots are grouped into segments of at most ``segment_frames``
frames, and a longer shot is split into equal pieces. A piece that starts inside a shot is rendered
after a warm-up over up to ``warmup_frames`` frames before it (decoded, colourized, discarded) so a
recurrent model's state is close to what it would be in a one-piece run.

Everything a segment needs is in :class:`SegmentPlan` (a frozen, picklable record: the input's
probe, the run's config, the working size, the shots and their references), so rendering segment
``i`` (``colorize.pipeline.render.render_segment``) can happen in another process.

The work folder ``.NAME.parts/`` beside the output holds one file per finished segment and
``journal.json``: the fingerprint of everything that changes the pictures (input identity, model,
weights and reference hashes, options, device, threads), the plan, and each finished part's frame
count and sha256. A fingerprint that differs from the run's makes the run start over, and says why.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from colorize.pipeline.config import RunConfig
from colorize.pipeline.sidecar import atomic_write_bytes

JOURNAL_NAME = "journal.json"
JOURNAL_VERSION = 1
_HASH_CHUNK = 1 << 20  # the input's identity: size, mtime and the sha256 of its first and last MiB


@dataclass(frozen=True)
class Segment:
    """Frames ``start`` .. ``stop - 1``; decoding begins at ``decode_from`` (the warm-up) whose pts
    is ``decode_pts``; ``shot_start`` is the first frame of the shot ``start`` lies in."""

    index: int
    start: int
    stop: int
    shot_start: int
    decode_from: int
    decode_pts: int | None = None

    @property
    def frames(self) -> int:
        return self.stop - self.start

    @property
    def warmup(self) -> int:
        return self.start - self.decode_from


@dataclass(frozen=True)
class SegmentPlan:
    """Everything needed to render any segment of one film on its own."""

    input: Path
    info: object  # colorize.io.MediaInfo
    config: RunConfig
    render_size: int
    work_hw: tuple[int, int]
    rot_k: int
    frames: int
    cuts: tuple[int, ...]  # first frame of every shot but the first
    shot_refs: tuple[int | None, ...]  # per shot: index into the run's references (None: no references)
    segments: tuple[Segment, ...]
    shots: tuple[dict, ...] = field(default=(), compare=False)  # the sidecar's shot records

    def shot_of(self, frame: int) -> int:
        """Index of the shot that ``frame`` belongs to."""
        import bisect

        return bisect.bisect_right(self.cuts, frame)

    def part_name(self, index: int) -> str:
        from colorize.io.join import part_suffix

        return f"part-{index:05d}{part_suffix(encode_options(self.config))}"

    def to_json(self) -> dict:
        return {
            "frames": self.frames,
            "render_size": self.render_size,
            "work_hw": list(self.work_hw),
            "rot_k": self.rot_k,
            "cuts": list(self.cuts),
            "shot_refs": list(self.shot_refs),
            "shots": list(self.shots),
            "segments": [asdict(s) for s in self.segments],
        }

    @classmethod
    def from_json(cls, d: dict, input: Path, info, config: RunConfig) -> "SegmentPlan":
        return cls(
            input=Path(input), info=info, config=config, render_size=int(d["render_size"]),
            work_hw=tuple(d["work_hw"]), rot_k=int(d["rot_k"]), frames=int(d["frames"]),
            cuts=tuple(d["cuts"]), shot_refs=tuple(d["shot_refs"]), shots=tuple(d.get("shots", ())),
            segments=tuple(Segment(**s) for s in d["segments"]),
        )


def encode_options(config: RunConfig):
    from colorize.io import EncodeOptions

    kw = {k: v for k, v in (("codec", config.codec), ("crf", config.crf), ("preset", config.preset)) if v is not None}
    return EncodeOptions(**kw)


# ------------------------------------------------------------------------------------ planning
def split_shots(cuts: list[int] | tuple[int, ...], frames: int, max_frames: int) -> list[tuple[int, int, int]]:
    """(start, stop, shot_start) of each segment: whole shots grouped up to ``max_frames`` frames,
    shots longer than that split into equal pieces of at most ``max_frames``."""
    if frames <= 0:
        return []
    if max_frames < 1:
        raise ValueError(f"segment length must be at least 1 frame, got {max_frames}")
    bounds = [0] + [c for c in sorted(set(cuts)) if 0 < c < frames] + [frames]
    out: list[tuple[int, int, int]] = []
    group: tuple[int, int] | None = None  # (start, stop) of whole shots being grouped
    for a, b in zip(bounds, bounds[1:]):
        if b - a > max_frames:
            if group is not None:
                out.append((group[0], group[1], group[0]))
                group = None
            pieces = math.ceil((b - a) / max_frames)
            edges = [a + round(k * (b - a) / pieces) for k in range(pieces + 1)]
            out.extend((s, e, a) for s, e in zip(edges, edges[1:]))
        elif group is not None and b - group[0] <= max_frames:
            group = (group[0], b)
        else:
            if group is not None:
                out.append((group[0], group[1], group[0]))
            group = (a, b)
    if group is not None:
        out.append((group[0], group[1], group[0]))
    return out


def plan_segments(cuts, frames: int, pts: list[int | None], max_frames: int, warmup: int) -> tuple[Segment, ...]:
    """The segments of a film of ``frames`` frames (``pts``: each frame's pts, for seeking)."""
    segs = []
    for i, (start, stop, shot_start) in enumerate(split_shots(cuts, frames, max_frames)):
        decode_from = max(shot_start, start - max(0, warmup))
        segs.append(Segment(i, start, stop, shot_start, decode_from,
                            pts[decode_from] if decode_from < len(pts) else None))
    return tuple(segs)


# --------------------------------------------------------------------------------- fingerprint
def input_identity(path: Path) -> dict:
    """Size, mtime and the sha256 of the first and last MiB: cheap for a 100 GB master, and any
    re-encode, trim or replacement of the file changes it."""
    st = os.stat(path)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(_HASH_CHUNK))
        if st.st_size > 2 * _HASH_CHUNK:
            f.seek(st.st_size - _HASH_CHUNK)
            h.update(f.read(_HASH_CHUNK))
    return {"path": str(Path(path).resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "head_tail_sha256": h.hexdigest()}


# RunConfig fields that do not change the pictures (or are handled before the journal is read).
_NOT_FINGERPRINTED = {"overwrite", "queue_size", "contact_sheet_frames"}


def fingerprint(config: RunConfig, input: Path, weights_sha256: str | None, references: list[dict],
                device: str, dtype: str, threads: int | None, render_size: int) -> dict:
    """Everything that decides the frames of the parts; compared key by key on a re-run."""
    from colorize import __version__

    options = {k: v for k, v in config.as_dict().items() if k not in _NOT_FINGERPRINTED}
    return {
        "input": input_identity(input),
        "model": config.model,
        "weights_sha256": weights_sha256,
        "references": _jsonable(references),
        "options": _jsonable(options),
        "render_size": render_size,
        "device": device,
        "dtype": dtype,
        "threads": threads,
        "colorize": __version__,
    }


def _jsonable(obj):
    return json.loads(json.dumps(obj, default=str))


def why_different(old: dict, new: dict) -> str | None:
    """A short reason when two fingerprints differ, else None."""
    if old.get("input") != new.get("input"):
        return "the input file changed"
    if old.get("model") != new.get("model"):
        return f"the model changed ({old.get('model')} -> {new.get('model')})"
    if old.get("weights_sha256") != new.get("weights_sha256"):
        return "the model weights changed"
    if old.get("references") != new.get("references"):
        return "the references changed"
    o, n = old.get("options") or {}, new.get("options") or {}
    for key in sorted(set(o) | set(n)):
        if o.get(key) != n.get(key):
            return f"the option {key.replace('_', '-')} changed ({o.get(key)} -> {n.get(key)})"
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            return f"the {key.replace('_', ' ')} changed ({old.get(key)} -> {new.get(key)})"
    return None


# ------------------------------------------------------------------------------------- journal
def work_dir_for(output: Path) -> Path:
    """``.NAME.parts`` beside the output (hidden, so folder inputs never pick it up)."""
    output = Path(output)
    return output.parent / f".{output.name}.parts"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_HASH_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class PartRecord:
    """A finished segment: its file (name inside the work folder), frames and sha256."""

    index: int
    file: str
    frames: int
    sha256: str


class Journal:
    """``journal.json`` in the work folder: fingerprint, plan and the finished parts."""

    def __init__(self, folder: Path, fingerprint: dict, plan: dict, parts: dict[int, PartRecord] | None = None) -> None:
        self.folder = Path(folder)
        self.fingerprint = fingerprint
        self.plan = plan
        self.parts: dict[int, PartRecord] = dict(parts or {})

    @property
    def path(self) -> Path:
        return self.folder / JOURNAL_NAME

    def save(self) -> None:
        data = {
            "version": JOURNAL_VERSION,
            "fingerprint": self.fingerprint,
            "plan": self.plan,
            "parts": {str(i): asdict(p) for i, p in sorted(self.parts.items())},
        }
        atomic_write_bytes(self.path, (json.dumps(data, indent=1) + "\n").encode())

    def add(self, part: PartRecord) -> None:
        self.parts[part.index] = part
        self.save()

    @classmethod
    def load(cls, folder: Path) -> "Journal | None":
        """The journal in ``folder``, or None when there is none or it cannot be read."""
        try:
            data = json.loads((Path(folder) / JOURNAL_NAME).read_text())
            if data.get("version") != JOURNAL_VERSION:
                return None
            parts = {int(k): PartRecord(**v) for k, v in data.get("parts", {}).items()}
            return cls(folder, data["fingerprint"], data["plan"], parts)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def verified_parts(self) -> dict[int, PartRecord]:
        """The finished parts whose file is present with the recorded sha256 (a part damaged or
        removed since is simply rendered again)."""
        good = {}
        for i, p in self.parts.items():
            f = self.folder / p.file
            try:
                if f.is_file() and sha256_file(f) == p.sha256:
                    good[i] = p
            except OSError:
                pass
        return good


def _ours(name: str) -> bool:
    """Files a segmented run writes into its work folder (parts, journal, their temporary files)."""
    return name == JOURNAL_NAME or name.startswith(("part-", ".part-", f".{JOURNAL_NAME}.partial-"))


def discard(folder: Path) -> None:
    """Remove a work folder: the files a segmented run puts there, then the folder if that left it
    empty (a file of someone else's under that name is never deleted)."""
    folder = Path(folder)
    try:
        entries = list(folder.iterdir())
    except OSError:
        return
    for entry in entries:
        if entry.is_file() and _ours(entry.name):
            try:
                entry.unlink()
            except OSError:
                pass
    try:
        folder.rmdir()
    except OSError:
        pass


class SegmentsKept(KeyboardInterrupt):
    """Ctrl-C / SIGTERM during a segmented run: the finished segments stay in the work folder.
    ``hint`` says how to resume or discard them."""

    def __init__(self, hint: str) -> None:
        super().__init__(hint)
        self.hint = hint
