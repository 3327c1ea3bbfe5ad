"""The runner between files on disk and a model: library entry points.

    from colorize.pipeline import RunConfig, colorize_paths
    results = colorize_paths(["film.mp4"], config=RunConfig(references=("still.jpg",), model="exemplar"))

The CLI (``colorize.cli``) is a thin layer over these; nothing here prints or exits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

from colorize.pipeline.config import DEFAULT_AUTO_MODEL, DEFAULT_REFERENCE_MODEL, RunConfig
from colorize.pipeline.errors import ModelError, UsageError
from colorize.pipeline.events import FileResult
from colorize.pipeline.inputs import Job, plan_jobs
from colorize.pipeline.runner import Runner


def colorize_paths(
    inputs: Iterable[str | Path],
    output: str | Path | None = None,
    config: RunConfig = RunConfig(),
    on_event: Callable[[object], None] | None = None,
) -> list[FileResult]:
    """Colourize files and folders as the command line does; one result per input file."""
    runner = Runner(config, on_event=on_event)
    jobs = plan_jobs([Path(p) for p in inputs], output, config.codec)
    return list(runner.run(jobs))


__all__ = [
    "DEFAULT_AUTO_MODEL",
    "DEFAULT_REFERENCE_MODEL",
    "FileResult",
    "Job",
    "ModelError",
    "Runner",
    "RunConfig",
    "UsageError",
    "colorize_paths",
    "plan_jobs",
]
