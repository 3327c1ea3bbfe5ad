"""Fixtures for the evaluation tests: colour clips generated with PyAV."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.evaluation.fakes import write_clip


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("eval_clips")
    write_clip(d / "a.mp4", frames=6)
    write_clip(d / "b.mp4", frames=5, width=48, height=64)
    return d
