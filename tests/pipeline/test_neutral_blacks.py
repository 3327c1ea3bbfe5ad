"""Pure black stays pure black: the gamut limit on the writer's path (color.gamut.finish_ab)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from colorize.pipeline.config import RunConfig
from colorize.pipeline.inputs import plan_jobs
from colorize.pipeline.runner import Runner
from tests.pipeline.fakes import decode_planes, grey_yuv_frame

BAR = 16  # pillarbox bar width in pixels (a multiple of 2: whole chroma samples)


def _pillarboxed(path: Path, frames: int = 6, width: int = 96, height: int = 48) -> Path:
    """A grey film with pure-black side bars (Y = 16, U = V = 128) and a mid-grey picture."""
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=24)
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        v.options = {"crf": "10", "preset": "ultrafast"}
        for i in range(frames):
            y = np.full((height, width), 16, np.uint8)
            y[:, BAR:-BAR] = 60 + (np.arange(width - 2 * BAR) % 100)[None]
            for p in v.encode(grey_yuv_frame(y, i, Fraction(1, 24))):
                out.mux(p)
        for p in v.encode():
            out.mux(p)
    return path


def test_navy_model_leaves_black_bars_exactly_neutral(tmp_path, register_fake):
    built = register_fake("fake", delay=1)
    clip = _pillarboxed(tmp_path / "film.mp4")
    runner = Runner(RunConfig(model="fake", device="cpu", codec="ffv1"))
    # A model that paints everything navy, bars included.
    navy = torch.tensor([15.0, -50.0])
    jobs = plan_jobs([clip], tmp_path / "out.mkv", "ffv1")
    original = Runner.build

    def build_then_tint(self):
        original(self)
        self.model.ab = navy

    Runner.build = build_then_tint
    try:
        [res] = list(runner.run(jobs))
    finally:
        Runner.build = original
    assert res.status == "done", res.error
    assert built and torch.equal(built[0].ab, navy)
    for y, u, v in decode_planes(tmp_path / "out.mkv"):
        bars = np.concatenate((u[:, : BAR // 2], u[:, -BAR // 2:], v[:, : BAR // 2], v[:, -BAR // 2:]))
        assert (bars == 128).all(), np.unique(bars)
        picture_v = v[:, BAR // 2 + 2: -BAR // 2 - 2]
        assert picture_v.mean() < 126  # the picture itself did get the (blue) colour
        assert (y[:, :BAR] == 16).all()
