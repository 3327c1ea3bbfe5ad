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
