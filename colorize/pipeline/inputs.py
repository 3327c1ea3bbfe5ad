"""From the command line's INPUT... and -o to a list of jobs: one input file, one output path.

* A file is one job; its output is ``-o`` when given (a file, or a folder when ``-o`` is an
  existing folder or ends with a path separator), else ``<stem>_colorized.<ext>`` beside it.
* A folder is a batch: every media file under it (recursively, hidden files and our own outputs
  skipped); with ``-o`` the outputs go into that folder with the subfolders mirrored.
* Several inputs: ``-o`` is a folder.

Each input is probed here, before any model is built, so a batch learns about unreadable files at
once. A job that cannot run carries its error; planning itself raises :class:`UsageError` only for
mistakes in the command line (output equal to an input).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from colorize.pipeline.errors import UsageError

VIDEO_SUFFIXES = frozenset(
    ".mp4 .m4v .mkv .mov .avi .webm .mpg .mpeg .m2v .ts .mts .m2ts .mxf .dv .ogv .wmv .flv .3gp .y4m .nut".split()
)
IMAGE_SUFFIXES = frozenset(".jpg .jpeg .png .tif .tiff .webp .bmp".split())
MEDIA_SUFFIXES = VIDEO_SUFFIXES | IMAGE_SUFFIXES

_OUR_OUTPUT = re.compile(r"_colorized(_\d+|_contact)?$")


@dataclass(frozen=True)
class Job:
    input: Path
    output: Path | None  # the planned output (for ``--pick all``: the base name of the set)
    info: object | None  # colorize.io.MediaInfo when the probe worked
    error: str | None = None  # why this input cannot be processed


def _is_our_output(p: Path) -> bool:
    if p.suffix.lower() == ".png" and p.stem.endswith("_preview"):  # --preview's contact sheets
        return True
    return bool(_OUR_OUTPUT.search(p.stem)) or p.name.endswith(".colorize.json")


def walk_media(folder: Path, exclude: Path | None = None) -> list[Path]:
    """Media files under ``folder``, sorted, skipping hidden entries, our outputs and ``exclude``."""
    found: list[Path] = []
    excl = exclude.resolve() if exclude is not None else None
    for root, dirs, files in os.walk(folder):
        rootp = Path(root)
        dirs[:] = sorted(
            d for d in dirs
            if not d.startswith(".") and (excl is None or (rootp / d).resolve() != excl)
        )
        for name in sorted(files):
            p = rootp / name
            if name.startswith(".") or p.suffix.lower() not in MEDIA_SUFFIXES or _is_our_output(p):
                continue
            found.append(p)
    return found


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def plan_jobs(inputs: list[Path], output: Path | str | None, codec: str | None) -> list[Job]:
    """``output`` may be a str so that a trailing "/" (meaning: a folder) survives."""
    from colorize.io import MediaError, output_path_for, probe

    if not inputs:
        raise UsageError("no input given")
    trailing_sep = output is not None and str(output).endswith((os.sep, "/"))
    output = Path(output) if output is not None else None
    output_is_dir = output is not None and (
        len(inputs) > 1 or any(p.is_dir() for p in inputs) or output.is_dir() or trailing_sep
    )
    if output is not None and not output_is_dir and output.suffix == "":
        raise UsageError(f"-o {output}: give the output file an extension (.mp4, .mkv, ...) or end a folder with /")
    pairs: list[tuple[Path, Path | None]] = []  # (file, folder it was found under, for mirroring)
    for given in inputs:
        if given.is_dir():
            files = walk_media(given, exclude=output if output_is_dir else None)
            if not files:
                pairs.append((given, None))
            pairs.extend((f, given) for f in files)
        else:
            pairs.append((given, given.parent))

    jobs: list[Job] = []
    planned: dict[Path, Path] = {}
    for path, base in pairs:
        if base is None:
            jobs.append(Job(path, None, None, f"{path}: no media files in this folder"))
            continue
        if not path.exists():
            jobs.append(Job(path, None, None, f"{path}: no such file"))
            continue
        if path.is_dir():
            jobs.append(Job(path, None, None, f"{path}: is a folder"))
            continue
        try:
            info = probe(path)
            if output is None:
                out = output_path_for(path, info, None, codec)
            elif output_is_dir:
                name = output_path_for(path, info, None, codec).name
                rel = path.parent.resolve().relative_to(base.resolve()) if base != path.parent else Path()
                out = output / rel / name
            else:
                out = output_path_for(path, info, output, codec)
                _check_container(out, info, output)
        except MediaError as exc:
            jobs.append(Job(path, None, None, str(exc)))
            continue
        except OSError as exc:
            jobs.append(Job(path, None, None, f"{path}: {exc.strerror or exc}"))
            continue
        if _same_file(path, out):
            raise UsageError(f"the output {out} is the input itself; choose another -o (inputs are never modified)")
        key = out.resolve()
        if key in planned:
            jobs.append(Job(path, None, info, f"{path}: its output {out} is already the output of {planned[key]}"))
            continue
        planned[key] = path
        jobs.append(Job(path, out, info))
    # An output must never overwrite another input of the same run.
    inputs_resolved = {j.input.resolve(): j.input for j in jobs}
    for j in jobs:
        if j.output is not None and j.output.resolve() in inputs_resolved:
            raise UsageError(f"the output {j.output} of {j.input} is also an input; choose another -o")
    return jobs


def _check_container(out: Path, info, given: Path) -> None:
    """``-o film.avi``: a container we cannot write correctly is a mistake in the command line."""
    from colorize.io import MediaError
    from colorize.io.remux import format_for

    if getattr(info, "is_image", False):
        return
    try:
        format_for(out)
    except MediaError as exc:
        raise UsageError(f"-o {exc}") from exc


def candidate_paths(output: Path, count: int) -> list[Path]:
    """``--pick all``: film_colorized.mp4 -> film_colorized_0.mp4, film_colorized_1.mp4, ..."""
    return [output.with_name(f"{output.stem}_{i}{output.suffix}") for i in range(count)]


def contact_sheet_path(output: Path) -> Path:
    return output.with_name(f"{output.stem}_contact.png")


def sidecar_path(output: Path) -> Path:
    return output.with_name(output.name + ".colorize.json")
