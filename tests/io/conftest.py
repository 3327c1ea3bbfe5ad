"""Clips shared by the I/O tests: generated once per session with PyAV, never modified."""

from __future__ import annotations

from fractions import Fraction

import pytest

from tests.media import make_clip


@pytest.fixture(scope="session")
def clips(tmp_path_factory):
    """Full-featured clips: VFR, SAR 4:3, two audio tracks, a subtitle track, title, creation time."""
    folder = tmp_path_factory.mktemp("clips")
    return {
        c: make_clip(folder / f"film.{c}", c, vfr=True, sar=Fraction(4, 3), audio_tracks=2, subtitles=True,
                     title="A film title")
        for c in ("mp4", "mkv", "mov")
    }
