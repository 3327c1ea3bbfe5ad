"""Segments: planning, the journal, resume after an interruption, start over when something changed."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from colorize.pipeline import events as ev
from colorize.pipeline.config import RunConfig
from colorize.pipeline.inputs import plan_jobs
from colorize.pipeline.runner import Runner
from colorize.pipeline.segments import Journal, SegmentsKept, plan_segments, split_shots, work_dir_for
from tests.media import read_packets, read_video
from tests.pipeline.fakes import decode_planes, make_clip


# ------------------------------------------------------------------------------------ planning
def test_short_shots_are_grouped_and_long_shots_split():
    # shots: [0,5) [5,12) [12,40) [40,44)
    assert split_shots([5, 12, 40], 44, 10) == [(0, 5, 0), (5, 12, 5), (12, 21, 12), (21, 31, 12), (31, 40, 12),
                                                (40, 44, 40)]
    assert split_shots([3, 6], 9, 10) == [(0, 9, 0)]  # three short shots in one segment
    assert split_shots([], 7, 2000) == [(0, 7, 0)]
    assert split_shots([], 0, 10) == []
    with pytest.raises(ValueError):
        split_shots([], 5, 0)


def test_every_frame_in_exactly_one_segment_and_warmup_stays_in_the_shot():
    cuts = [17, 18, 250, 900]
    pts = list(range(0, 3000 * 2, 2))
    segs = plan_segments(cuts, 1000, pts, 100, 16)
    covered = [f for s in segs for f in range(s.start, s.stop)]
    assert covered == list(range(1000))
    for s in segs:
        assert s.frames <= 100
        assert s.shot_start <= s.decode_from <= s.start and s.start - s.decode_from <= 16
        assert s.decode_pts == pts[s.decode_from]
        if s.start in [0] + cuts:
            assert s.decode_from == s.start  # a shot start needs no warm-up


# ------------------------------------------------------------------------------ end to end
def _runner(events=None, **cfg):
    return Runner(RunConfig(device="cpu", **cfg), on_event=(events.append if events is not None else None))


def _run(clip: Path, out: Path, events=None, **cfg):
    runner = _runner(events, **cfg)
    [job] = plan_jobs([clip], out, cfg.get("codec"))
    return runner, runner.run_job(job)


@pytest.fixture
def film(tmp_path):
    return make_clip(tmp_path / "film.mp4", frames=40, width=64, height=48, cut_at=10)


def test_segmented_run_equals_one_piece_run(tmp_path, register_fake, film):
    register_fake("fake", delay=2)
    _, one = _run(film, tmp_path / "one.mkv", model="fake", codec="ffv1", segment_frames=0)
    events = []
    _, seg = _run(film, tmp_path / "seg.mkv", events, model="fake", codec="ffv1", segment_frames=10)
    assert one.status == seg.status == "done", (one.error, seg.error)
    a, b = decode_planes(tmp_path / "one.mkv"), decode_planes(tmp_path / "seg.mkv")
    assert len(a) == len(b) == 40
    assert all(np.array_equal(x, y) for fa, fb in zip(a, b) for x, y in zip(fa, fb))
    ta, _, _ = read_video(tmp_path / "one.mkv")
    tb, _, _ = read_video(tmp_path / "seg.mkv")
    assert ta == tb
    assert read_packets(tmp_path / "one.mkv", "audio") == read_packets(tmp_path / "seg.mkv", "audio")
    side = json.loads((tmp_path / "seg.mkv.colorize.json").read_text())
    assert side["segments"]["ranges"] == [[0, 10], [10, 20], [20, 30], [30, 40]]
    assert side["shots"] == [{"first_frame": 0}, {"first_frame": 10}]
    assert not work_dir_for(tmp_path / "seg.mkv").exists()
    assert [e.frames_done for e in events if isinstance(e, ev.FrameDone)][-1] == 40


def test_interrupted_run_resumes_and_matches_an_uninterrupted_one(tmp_path, register_fake, film):
    register_fake("fake", delay=1)
    register_fake("stop", delay=1, interrupt_at=25)
    _, full = _run(film, tmp_path / "full.mp4", model="fake", segment_frames=10)
    assert full.status == "done", full.error

    out = tmp_path / "film_colorized.mp4"
    work = work_dir_for(out)
    with pytest.raises(SegmentsKept) as info:
        _run(film, out, model="stop", segment_frames=10)
    assert "run the same command again" in info.value.hint and str(work) in info.value.hint
    assert not out.exists()
    journal = Journal.load(work)
    assert sorted(journal.parts) == [0, 1]  # [0,10) and [10,20) finished; [20,30) was in progress
    assert sorted(p.name for p in work.iterdir()) == ["journal.json", "part-00000.mov", "part-00001.mov"]

    # The same command again (the fake stands in for the same model: same name, same weights).
    built = register_fake("stop", delay=1)
    events = []
    _, res = _run(film, out, events, model="stop", segment_frames=10)
    assert res.status == "done", res.error
    notices = [e.text for e in events if isinstance(e, ev.Notice)]
    assert notices and notices[0].startswith("resuming: 2 of 4 segments (20 of 40 frames)")
    assert built[0].pushed[0] == 10  # warm-up from the shot start (20 - 16 lies before it); 0..9 not redone
    assert not work.exists()
    a, b = decode_planes(tmp_path / "full.mp4"), decode_planes(out)
    assert len(a) == len(b) == 40
    assert all(np.array_equal(x, y) for fa, fb in zip(a, b) for x, y in zip(fa, fb))
    assert read_video(tmp_path / "full.mp4")[0] == read_video(out)[0]
    assert read_packets(tmp_path / "full.mp4", "audio") == read_packets(out, "audio")


def test_changed_option_starts_over_and_says_why(tmp_path, register_fake, film):
    register_fake("stop", interrupt_at=30)
    out = tmp_path / "film_colorized.mp4"
    with pytest.raises(SegmentsKept):
        _run(film, out, model="stop", segment_frames=10)
    built = register_fake("stop")
    events = []
    _, res = _run(film, out, events, model="stop", segment_frames=10, crf=20)
    assert res.status == "done", res.error
    notices = [e.text for e in events if isinstance(e, ev.Notice)]
    assert len(notices) == 1 and "starting over: the option crf changed (None -> 20)" in notices[0]
    assert built[0].pushed[:20] == list(range(20))  # from the first frame again


def test_overwrite_starts_over_and_a_damaged_part_is_rendered_again(tmp_path, register_fake, film):
    register_fake("stop", interrupt_at=30)
    out = tmp_path / "film_colorized.mp4"
    with pytest.raises(SegmentsKept):
        _run(film, out, model="stop", segment_frames=10)
    part = work_dir_for(out) / "part-00001.mov"
    part.write_bytes(part.read_bytes()[:-10])  # damaged (a disk error, a copy cut short)
    built = register_fake("stop")
    events = []
    _, res = _run(film, out, events, model="stop", segment_frames=10)
    assert res.status == "done", res.error
    assert [e.text for e in events if isinstance(e, ev.Notice)][0].startswith("resuming: 2 of 4 segments")  # 0 and 2; 1 is damaged
    assert built[0].pushed[0] == 10  # segment 1 starts a shot: no warm-up

    with pytest.raises(SegmentsKept):
        register_fake("stop", interrupt_at=30)
        _run(film, out, model="stop", segment_frames=10, overwrite=True)
    built = register_fake("stop")
    events = []
    _, res = _run(film, out, events, model="stop", segment_frames=10, overwrite=True)
    assert res.status == "done"
    assert "starting over (--overwrite)" in [e.text for e in events if isinstance(e, ev.Notice)][0]
    assert built[0].pushed[:20] == list(range(20))  # from the first frame again


def test_a_failed_run_leaves_no_work_folder(tmp_path, register_fake, film):
    register_fake("bad", fail_at=3)
    out = tmp_path / "film_colorized.mp4"
    _, res = _run(film, out, model="bad", segment_frames=10)
    assert res.status == "error" and "fake model failure" in res.error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["film.mp4"]


def test_plan_is_picklable_and_a_segment_renders_on_its_own(tmp_path, register_fake, film):
    """What another executor (Ray) does: plan in the driver, render one segment elsewhere."""
    from colorize.pipeline.render import render_segment
    from colorize.pipeline.runner import working_size
    from colorize.pipeline.segmented import make_plan

    register_fake("fake")
    runner = _runner(model="fake", segment_frames=10)
    runner.build()
    [job] = plan_jobs([film], tmp_path / "x.mp4", None)
    hw = working_size(job.info.width, job.info.height, job.info.sar, runner.render_size, runner.model.size_multiple)
    plan = pickle.loads(pickle.dumps(make_plan(runner, job, hw, 0)))
    assert plan.cuts == (10,) and len(plan.segments) == 4
    rec = render_segment(plan, 2, tmp_path)  # no runner given: builds its own from plan.config
    assert rec.index == 2 and rec.frames == 10 and (tmp_path / rec.file).is_file()
    assert len(decode_planes(tmp_path / rec.file)) == 10


def test_discard_never_deletes_files_it_did_not_write(tmp_path):
    from colorize.pipeline.segments import discard

    work = tmp_path / ".film_colorized.mp4.parts"
    work.mkdir()
    for name in ("journal.json", "part-00000.mov", ".part-00001.partial-1a2b3c4d.mov", "notes.txt"):
        (work / name).write_text("x")
    discard(work)
    assert sorted(p.name for p in work.iterdir()) == ["notes.txt"]
    (work / "notes.txt").unlink()
    discard(work)
    assert not work.exists()

