"""The command line around segments: Ctrl-C keeps finished segments and says how to resume; the same
command resumes; a changed option starts over and says so."""

from __future__ import annotations

from tests.cli.test_cli_colorize import invoke, one_line_error
from tests.pipeline.fakes import make_clip


def test_ctrl_c_keeps_segments_same_command_resumes_changed_option_restarts(tmp_path, register_fake):
    clip = make_clip(tmp_path / "film.mp4", frames=24, width=64, height=48)
    out = tmp_path / "film_colorized.mp4"
    parts = tmp_path / ".film_colorized.mp4.parts"
    register_fake("stop", interrupt_at=18)
    r = invoke(clip, "--model", "stop", "--device", "cpu", "--segment-frames", "8")
    assert r.exit_code == 130 and "interrupted" in one_line_error(r)
    assert "2 of 3 segments" in r.stderr and "run the same command again to resume" in r.stderr
    assert str(parts) in r.stderr and "--overwrite" in r.stderr
    assert parts.is_dir() and not out.exists()

    register_fake("stop")
    r = invoke(clip, "--model", "stop", "--device", "cpu", "--segment-frames", "8", "--crf", "23")
    assert r.exit_code == 0, r.stderr
    assert "starting over: the option crf changed" in r.stderr
    assert out.exists() and not parts.exists()

    register_fake("stop", interrupt_at=18)
    r = invoke(clip, "--model", "stop", "--device", "cpu", "--segment-frames", "8", "--overwrite")
    assert r.exit_code == 130 and parts.is_dir()
    register_fake("stop")
    r = invoke(clip, "--model", "stop", "--device", "cpu", "--segment-frames", "8", "--overwrite")
    assert r.exit_code == 0
    assert "starting over (--overwrite)" in r.stderr and not parts.exists()


def test_resume_message(tmp_path, register_fake):
    clip = make_clip(tmp_path / "film.mp4", frames=24, width=64, height=48)
    register_fake("stop", interrupt_at=18)
    invoke(clip, "--model", "stop", "--device", "cpu", "--segment-frames", "8")
    register_fake("stop")
    r = invoke(clip, "--model", "stop", "--device", "cpu", "--segment-frames", "8")
    assert r.exit_code == 0
    assert "resuming: 2 of 3 segments (16 of 24 frames)" in r.stderr
    r = invoke(clip, "--model", "stop", "--device", "cpu", "--segment-frames", "8", "-q")
    assert r.stderr == ""  # skipped (output exists), quietly


def test_sigterm_keeps_finished_segments_too(tmp_path, register_fake):
    clip = make_clip(tmp_path / "film.mp4", frames=24, width=64, height=48)
    register_fake("term", sigterm_at=17)
    r = invoke(clip, "--model", "term", "--device", "cpu", "--segment-frames", "8")
    assert r.exit_code == 130 and "2 of 3 segments" in r.stderr
    parts = tmp_path / ".film_colorized.mp4.parts"
    assert sorted(p.name for p in parts.iterdir()) == ["journal.json", "part-00000.mov", "part-00001.mov"]
    assert not (tmp_path / "film_colorized.mp4").exists()
