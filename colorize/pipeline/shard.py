"""``--shard K/N``: the K-th of N disjoint parts of a batch, for job arrays over an archive.

Every node of a job array plans the same input list (``inputs.plan_jobs``) and keeps only its
part, so the N runs together process every input exactly once, with no coordinator and no shared
state. What makes that hold:

* **K is 0-based**: ``0 <= K < N``, as Kubernetes' indexed jobs and ``seq 0 $((N-1))`` count, and
  as SLURM does with ``--array=0-$((N-1))``. ``K/N`` with ``K >= N`` is refused rather than
  wrapped, so a 1-based array (``--array=1-N``, GNU parallel's ``{#}``) fails loudly on its last
  task instead of silently skipping part 0.
* **Deterministic**: the parts depend only on each file's path *relative to the INPUT it was found
  under* (plus the INPUT's position on the command line) and its frame count from the probe,
  never on absolute mount points, ``os.walk`` order, hostnames or time. Two machines that see the
  same files (mounted anywhere) and run the same command get the same parts; a re-run gets the
  same parts, and the usual skip of existing outputs makes it resume.
* **Balanced by frame count**: longest-first greedy ("LPT") bin packing: files sorted by frames
  (descending, ties by key) each go to the part with the fewest frames so far (ties: lowest K).
  The largest part exceeds the ideal ``total / N`` by less than one file's frames.

An input that cannot be probed counts as one frame; it still lands in exactly one part, whose run
reports its error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Sequence

from colorize.pipeline.errors import UsageError
from colorize.pipeline.inputs import Job

_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    """Part ``index`` (0-based) of ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1:
            raise UsageError(f"--shard {self.index}/{self.count}: N must be at least 1")
        if not 0 <= self.index < self.count:
            hint = ""
            if self.index == self.count:
                hint = (f"; K is 0-based (0..{self.count - 1}): with 1-based task ids "
                        f"(SLURM --array=1-{self.count}, GNU parallel {{#}}) pass K-1")
            raise UsageError(
                f"--shard {self.index}/{self.count}: K must be between 0 and {self.count - 1}{hint}"
            )

    @classmethod
    def parse(cls, text: str) -> "Shard":
        """``"3/8"`` -> ``Shard(3, 8)``; anything else is a :class:`UsageError`."""
        m = _SPEC.match(str(text))
        if m is None:
            raise UsageError(
                f"--shard {text!r}: expected K/N with whole numbers, e.g. --shard 0/4 "
                "(K is 0-based: 0 <= K < N)"
            )
        return cls(int(m.group(1)), int(m.group(2)))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_key(job: Job, inputs: Sequence[Path]) -> tuple[int, str]:
    """(position of the INPUT the file came from, its path below that INPUT, POSIX form).

    Independent of where the archive is mounted and of the current directory."""
    p = Path(job.input)
    for pos, given in enumerate(inputs):
        given = Path(given)
        if p == given:
            return pos, p.name
        try:
            rel = p.relative_to(given)
        except ValueError:
            continue
        return pos, PurePosixPath(*rel.parts).as_posix()
    return len(inputs), PurePosixPath(*p.parts).as_posix()


def job_frames(job: Job) -> int:
    """The weight of a job: its frame count (header, else duration x fps); 1 when unknown."""
    info = job.info
    if info is None:
        return 1
    est = getattr(info, "frame_estimate", None)
    if est is None:
        est = getattr(info, "frames", None)
    return max(1, int(est or 1))


def assign(weights: Sequence[int], keys: Sequence, count: int) -> list[int]:
    """The part (0..count-1) of each item: longest first onto the lightest part (ties: lowest)."""
    if len(weights) != len(keys):
        raise ValueError("one key per weight")
    if len(set(keys)) != len(keys):
        raise ValueError("shard keys must be unique")
    order = sorted(range(len(weights)), key=lambda i: (-weights[i], keys[i]))
    loads = [0] * count
    part = [0] * len(weights)
    for i in order:
        k = min(range(count), key=lambda j: (loads[j], j))
        part[i] = k
        loads[k] += weights[i]
    return part


def select_shard(jobs: Sequence[Job], inputs: Sequence[Path], shard: Shard) -> list[Job]:
    """The jobs of part ``shard``, in their planned order."""
    keys = [shard_key(j, inputs) for j in jobs]
    if len(set(keys)) != len(keys):  # the same file given twice: fall back to the position
        keys = [(k, i) for i, k in enumerate(keys)]
    parts = assign([job_frames(j) for j in jobs], keys, shard.count)
    return [j for j, k in zip(jobs, parts) if k == shard.index]


def shard_summary(selected: Sequence[Job], jobs: Sequence[Job], shard: Shard) -> str:
    """One line for the log: which part this is and how much of the batch it holds."""
    mine = sum(job_frames(j) for j in selected)
    total = sum(job_frames(j) for j in jobs)
    return (f"shard {shard} (0-based): {len(selected)} of {len(jobs)} files, "
            f"{mine:,} of {total:,} frames")
