import io
from pathlib import Path

from colorize.cli.progress import PlainReporter, Reporter, RichReporter, make_reporter
from colorize.pipeline import events as ev


class _Tty(io.StringIO):
    def isatty(self):
        return True


def _feed(rep):
    rep(ev.BatchStarted(files=2, frames=20))
    for pos, name in ((1, "a.mp4"), (2, "b.mp4")):
        rep(ev.FileStarted(Path(name), Path(name + ".out"), pos, 2, 10))
        for i in range(1, 11):
            rep(ev.FrameDone(Path(name), i))
        status = "done" if pos == 1 else "skipped"
        rep(ev.FileFinished(ev.FileResult(Path(name), Path(name + ".out"), status, frames=10 if pos == 1 else 0,
                                          seconds=1.0)))
    rep.message("colorize: error: something")
    rep.close()


def test_reporter_choice():
    assert type(make_reporter(True, _Tty())) is Reporter
    assert isinstance(make_reporter(False, io.StringIO()), PlainReporter)
    rep = make_reporter(False, _Tty())
    assert isinstance(rep, RichReporter)
    rep.close()


def test_rich_reporter_renders_bars():
    out = _Tty()
    _feed(RichReporter(out))
    text = out.getvalue()
    assert "a.mp4" in text and "frames" in text and "fps" in text and "something" in text


def test_plain_reporter_lines():
    out = io.StringIO()
    rep = PlainReporter(out, interval=0.0)
    _feed(rep)
    lines = out.getvalue().splitlines()
    assert lines[0] == "[1/2] a.mp4 -> a.mp4.out (10 frames)"
    assert any("10/10 frames (100%)" in l and "fps" in l and "ETA" in l for l in lines)
    assert any(l.startswith("  done: a.mp4.out (10 frames") for l in lines)
    assert any("skipped: b.mp4.out exists" in l for l in lines)


def _batch(rep, fail_after: int = 4):
    """Three inputs planned at 10 frames each: a.mp4 done, b.mp4 skipped (not in the batch total),
    c.mp4 fails after ``fail_after`` frames."""
    rep(ev.BatchStarted(files=3, frames=20))
    rep(ev.FileStarted(Path("a.mp4"), Path("a_c.mp4"), 1, 3, 10))
    for i in range(1, 11):
        rep(ev.FrameDone(Path("a.mp4"), i))
    rep(ev.FileFinished(ev.FileResult(Path("a.mp4"), Path("a_c.mp4"), "done", frames=10, seconds=2.0,
                                      outputs=(Path("a_c.mp4"), Path("a_c.mp4.colorize.json")))))
    rep(ev.FileStarted(Path("b.mp4"), Path("b_c.mp4"), 2, 3, 10, will_run=False))
    rep(ev.FileFinished(ev.FileResult(Path("b.mp4"), Path("b_c.mp4"), "skipped")))
    rep(ev.FileStarted(Path("c.mp4"), Path("c_c.mp4"), 3, 3, 10))
    for i in range(1, fail_after + 1):
        rep(ev.FrameDone(Path("c.mp4"), i))
    rep(ev.FileFinished(ev.FileResult(Path("c.mp4"), Path("c_c.mp4"), "error", error="c.mp4: truncated")))


def test_rich_reporter_leaves_a_line_per_input_and_a_summary():
    out = _Tty()
    rep = RichReporter(out)
    _batch(rep)
    rep.close()
    text = out.getvalue()
    assert "done: a_c.mp4 (10 frames, 2.0 s, 5.0 fps)" in text
    assert "skipped: b_c.mp4 exists" in text
    assert "3 inputs: 1 done, 1 skipped, 1 failed; 10 frames in " in text and " fps)" in text


def test_plain_reporter_summary_and_singular_frame():
    out = io.StringIO()
    rep = PlainReporter(out, interval=1e9)
    rep(ev.BatchStarted(files=1, frames=1))
    rep(ev.FileStarted(Path("p.png"), Path("p_c.png"), 1, 1, 1))
    rep(ev.FrameDone(Path("p.png"), 1))
    rep(ev.FileFinished(ev.FileResult(Path("p.png"), Path("p_c.png"), "done", frames=1, seconds=0.5)))
    rep.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "[1/1] p.png -> p_c.png (1 frame)"
    assert lines[1].startswith("  done: p_c.png (1 frame, 0.5 s")
    assert lines[2].startswith("1 input: 1 done, 0 skipped, 0 failed; 1 frame in ")


def test_interrupted_run_has_no_summary():
    out = io.StringIO()
    rep = PlainReporter(out)
    _batch(rep)
    rep.close(summary=False)
    assert "inputs:" not in out.getvalue()


def test_batch_bar_counts_only_frames_done_and_drops_a_failed_files_rest():
    rep = RichReporter(_Tty())
    _batch(rep, fail_after=4)
    overall = rep.progress.tasks[0]
    # 10 frames of a.mp4 and the 4 of c.mp4 really done; c's 6 others leave the total, b was never in it.
    assert (overall.completed, overall.total) == (14, 14)
    rep.close()


def test_pick_all_lines_name_the_candidates():
    from colorize.cli.progress import result_line

    cands = (Path("f_c_0.mp4"), Path("f_c_1.mp4"))
    skipped = ev.FileResult(Path("f.mp4"), Path("f_c.mp4"), "skipped", candidates=cands)
    assert result_line(skipped) == "skipped: f_c_0.mp4, f_c_1.mp4 exist (--overwrite to replace)"
    done = ev.FileResult(Path("f.mp4"), Path("f_c.mp4"), "done", frames=3, seconds=1.0, candidates=cands,
                         outputs=(*cands, Path("f_c_contact.png"), Path("f_c.mp4.colorize.json")))
    assert result_line(done).startswith("done: f_c_0.mp4, f_c_1.mp4, f_c_contact.png (3 frames")
