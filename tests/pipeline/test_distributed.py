"""``--executor ray``: a film's segments rendered as Ray tasks on a local cluster give the local
run's output, frame for frame. Skipped when Ray is not installed (``pip install "colorize[ray]"``)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from colorize.pipeline.config import RunConfig
from colorize.pipeline.inputs import plan_jobs
from colorize.pipeline.runner import Runner
from tests.pipeline.fakes import decode_planes, make_clip


def _packets(path: Path, kind: str) -> list[tuple[int | None, bytes]]:
    with av.open(str(path)) as c:
        stream = c.streams.video[0] if kind == "video" else c.streams.audio[0]
        return [(p.pts, bytes(p)) for p in c.demux(stream) if p.size]


def test_ray_segments_equal_the_local_run(tmp_path, ray_executor, monkeypatch):
    # a real shipped model: the Ray workers build it from the registry, as on a cluster
    clip = make_clip(tmp_path / "film.mp4", frames=40, width=64, height=48, cut_at=25)
    cfg = RunConfig(model="lstm", device="cpu", segment_frames=10, warmup_frames=4)
    (local,) = list(Runner(cfg).run(plan_jobs([clip], tmp_path / "local.mp4", None)))
    assert local.status == "done", local.error
    import colorize.pipeline.segmented as segmented

    def not_here(*a, **k):
        raise AssertionError("a segment was rendered in the driver, not in a Ray task")

    monkeypatch.setattr(segmented, "render_segment", not_here)  # the workers import their own
    runner = Runner(cfg)
    runner.executor = ray_executor
    seen = []
    runner.on_event = seen.append
    (remote,) = list(runner.run(plan_jobs([clip], tmp_path / "ray.mp4", None)))
    assert remote.status == "done", remote.error
    a, b = decode_planes(tmp_path / "local.mp4"), decode_planes(tmp_path / "ray.mp4")
    assert len(a) == len(b) == 40
    for pa, pb in zip(a, b):
        assert all(np.array_equal(x, y) for x, y in zip(pa, pb))
    assert _packets(tmp_path / "local.mp4", "video") == _packets(tmp_path / "ray.mp4", "video")
    assert _packets(tmp_path / "local.mp4", "audio") == _packets(tmp_path / "ray.mp4", "audio")
    assert not list(tmp_path.glob(".*.parts"))  # the work folder is gone
    import json

    side = json.loads((tmp_path / "ray.mp4.colorize.json").read_text())
    assert side["segments"]["executor"] == "ray" and side["segments"]["count"] == 5
    local_side = json.loads((tmp_path / "local.mp4.colorize.json").read_text())
    assert local_side["segments"]["executor"] == "local"
    assert side["timings"]["model_s"] > 0 and side["timings"]["encode_s"] > 0  # the tasks' time, summed
    if "extra_model_frames" in local_side["segments"]:  # same warm-up and look-ahead work either way
        assert side["segments"]["extra_model_frames"] == local_side["segments"]["extra_model_frames"]
    from colorize.pipeline import events as ev

    done = [e.frames_done for e in seen if isinstance(e, ev.FrameDone)]
    assert done == sorted(done) and done[-1] == 40  # progress per finished segment, in order
    assert len(done) == 5  # 40 frames in segments of at most 10, cut at 25
