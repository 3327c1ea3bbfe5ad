"""The command line through Click's CliRunner: exit codes, messages, JSON, bad inputs."""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path

import av
import pytest
import torch
from click.testing import CliRunner

from colorize.cli.main import cli
from tests.media import make_stalled_timestamps
from tests.pipeline.fakes import make_clip, make_still


def invoke(*args, cwd: Path | None = None):
    runner = CliRunner()
    old = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        return runner.invoke(cli, [str(a) for a in args], prog_name="colorize", catch_exceptions=False)
    finally:
        os.chdir(old)


def one_line_error(result) -> str:
    lines = [l for l in result.stderr.splitlines() if l.startswith("colorize: error:")]
    assert lines, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture
def fake(register_fake):
    return register_fake("fake", delay=1)


@pytest.fixture
def clip(tmp_path) -> Path:
    return make_clip(tmp_path / "film.mp4", frames=6)


def test_help_names_registered_models_and_exit_codes(fake):
    from colorize.models.registry import list_models

    r = invoke("--help")
    assert r.exit_code == 0
    for name in list_models():
        assert name in r.stdout
    assert "fake" in r.stdout and "Exit codes" in r.stdout and "colorize models" in r.stdout
    assert r.stdout.startswith("Usage: colorize [OPTIONS] INPUT...")


def test_colourize_default_name_json_and_quiet(tmp_path, fake, clip):
    r = invoke(clip, "--model", "fake", "--device", "cpu", "--json", "--quiet")
    assert r.exit_code == 0, r.stderr
    assert r.stderr == ""
    rec = json.loads(r.stdout)
    assert rec["status"] == "done" and rec["frames"] == 6 and rec["model"] == "fake"
    assert rec["output"] == str(tmp_path / "film_colorized.mp4") and rec["error"] is None
    assert rec["weights_sha256"] == "f" * 64
    assert (tmp_path / "film_colorized.mp4").exists()
    # run again: skipped, still exit 0
    r = invoke(clip, "--model", "fake", "--device", "cpu", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["status"] == "skipped"


def test_threads_option_sets_torch_threads(tmp_path, fake, clip, monkeypatch):
    from colorize.pipeline.device import cpu_threads

    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    r = invoke(clip, "--model", "fake", "--device", "cpu", "--threads", "3", "-q")
    assert r.exit_code == 0, r.stderr
    assert calls == [3]
    r = invoke(clip, "--model", "fake", "--device", "cpu", "-q", "--overwrite")
    assert r.exit_code == 0, r.stderr
    assert calls == [3, cpu_threads()]
    assert invoke(clip, "--model", "fake", "--threads", "0").exit_code == 2


def test_plain_progress_lines_when_not_a_tty(tmp_path, fake, clip):
    r = invoke(clip, "--model", "fake", "--device", "cpu", "-o", tmp_path / "x.mkv")
    assert r.exit_code == 0, r.stderr
    assert "[1/1]" in r.stderr and "done:" in r.stderr and (tmp_path / "x.mkv").exists()


def test_python_dash_m_entry_point():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "colorize", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and "0." in out.stdout


def test_input_named_like_a_subcommand_is_an_input(tmp_path, fake):
    # a folder named "train" holding a clip, and a file literally named "models"
    (tmp_path / "train").mkdir()
    make_clip(tmp_path / "train" / "a.mp4", frames=3, audio=False)
    src = make_clip(tmp_path / "m.mp4", frames=3, audio=False)
    src.rename(tmp_path / "models")
    r = invoke("train", "--model", "fake", "--device", "cpu", "--json", cwd=tmp_path)
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["status"] == "done" and (tmp_path / "train" / "a_colorized.mp4").exists()
    r = invoke("models", "--model", "fake", "--device", "cpu", "-o", "out.mkv", "--json", cwd=tmp_path)
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "out.mkv").exists()
    # --list-models works whatever files are here
    r = invoke("--list-models", cwd=tmp_path)
    assert "fake" in r.stdout and "sha256" in r.stdout
    # where no such path exists, the names are the subcommands
    r = invoke("models", "--no-load", "--json", cwd=tmp_path / "train")
    assert r.exit_code == 0, r.stderr
    assert "fake" in {json.loads(l)["name"] for l in r.stdout.splitlines()}


def test_models_command_reports_loading(fake):
    r = invoke("models", "--json")
    recs = {json.loads(l)["name"]: json.loads(l) for l in r.stdout.splitlines()}
    assert recs["fake"]["loads"] is True and recs["fake"]["load_message"] == "ok"
    assert set(recs["fake"]["weights"]) >= {"file", "size_bytes", "sha256", "params", "data", "metrics"}
    r = invoke("models", "--no-load")
    assert "fake" in r.stdout and "sha256" in r.stdout


def test_train_and_eval_call_the_library_lazily(monkeypatch, tmp_path, fake):
    import colorize.evaluation as evaluation
    import colorize.training as training

    calls = {}
    monkeypatch.setattr(training, "cli_train", lambda **kw: calls.setdefault("train", kw) and 0, raising=False)
    class Report:
        def as_dict(self):
            return {"mean": {"psnr": 30.0}}

    monkeypatch.setattr(evaluation, "cli_eval", lambda **kw: calls.setdefault("eval", kw) and Report(), raising=False)
    r = invoke("train", "--model", "fake", "--data", tmp_path, "--steps", "5", "--resume", "--batch", "4",
               "--size", "64", "--out", tmp_path / "ck", "--lr", "3e-4", "--precision", "bf16", "--threads", "1")
    assert r.exit_code == 0, r.stderr
    assert calls["train"]["lr"] == 3e-4 and calls["train"]["precision"] == "bf16" and calls["train"]["threads"] == 1
    assert calls["train"]["init"] is None and calls["train"]["ema"] is None and calls["train"]["extra"] is None
    assert calls["train"]["model"] == "fake" and calls["train"]["data"] == (tmp_path,)
    assert calls["train"]["steps"] == 5 and calls["train"]["resume"] is True and calls["train"]["size"] == 64
    calls.clear()
    r = invoke("train", "--model", "fake", "--data", tmp_path, "--ema", "0.999", "--set", "temporal_weight=0.5",
               "--set", " bilateral_weight = 2 ")
    assert r.exit_code == 0, r.stderr
    assert calls["train"]["ema"] == 0.999
    assert calls["train"]["photo_short"] is None and calls["train"]["crop_min"] is None
    assert calls["train"]["extra"] == {"temporal_weight": "0.5", "bilateral_weight": "2"}
    for bad in ("temporal_weight", "=3"):
        r = invoke("train", "--model", "fake", "--data", tmp_path, "--set", bad)
        assert r.exit_code == 2 and "NAME=VALUE" in r.stderr
    r = invoke("train", "--model", "fake", "--data", tmp_path, "--ema", "1")
    assert r.exit_code == 2
    calls.clear()
    r = invoke("train", "--model", "fake", "--data", tmp_path, "--photo-size", "256", "--crop-min", "0.3")
    assert r.exit_code == 0, r.stderr
    assert calls["train"]["photo_short"] == 256 and calls["train"]["crop_min"] == 0.3
    for bad in (("--crop-min", "0"), ("--crop-min", "1.5"), ("--photo-size", "8")):
        r = invoke("train", "--model", "fake", "--data", tmp_path, *bad)
        assert r.exit_code == 2, bad
    r = invoke("eval", "--model", "fake", tmp_path, "--ref-mode", "first-frame", "--max-frames", "9", "--json")
    assert r.exit_code == 0, r.stderr
    assert calls["eval"]["dirs"] == (tmp_path,) and calls["eval"]["max_frames"] == 9 and calls["eval"]["json"]
    assert json.loads(r.stdout) == {"mean": {"psnr": 30.0}}
    still = tmp_path / "still.jpg"
    still.write_bytes(b"not read by the fake")
    calls.clear()
    r = invoke("eval", "--model", "fake", tmp_path, "--ref", still, "--csv", tmp_path / "frames.csv", "--json")
    assert r.exit_code == 0, r.stderr
    assert calls["eval"]["reference"] == still and calls["eval"]["out_csv"] == tmp_path / "frames.csv"
    assert calls["eval"]["ref_mode"] is None
    r = invoke("eval", "--model", "fake", tmp_path, "--ref", tmp_path / "missing.jpg")
    assert r.exit_code == 2
    monkeypatch.delattr(training, "cli_train")
    r = invoke("train", "--model", "fake", "--data", tmp_path)
    assert r.exit_code == 1 and "not available" in one_line_error(r)


# ----------------------------------------------------------------------------------- bad input
def _truncated(tmp_path: Path) -> Path:
    p = make_clip(tmp_path / "long.mkv", frames=40, width=96, height=64, audio=False)
    data = p.read_bytes()
    t = tmp_path / "truncated.mkv"
    t.write_bytes(data[: len(data) * 6 // 10])
    return t


def _audio_only(tmp_path: Path) -> Path:
    p = tmp_path / "sound.m4a"
    import numpy as np

    with av.open(str(p), "w", format="mp4") as out:
        a = out.add_stream("aac", rate=8000, layout="mono")
        af = av.AudioFrame.from_ndarray(np.zeros((1, 4096), np.float32), format="fltp", layout="mono")
        af.sample_rate = 8000
        af.pts, af.time_base = 0, Fraction(1, 8000)
        for pk in a.encode(af):
            out.mux(pk)
        for pk in a.encode():
            out.mux(pk)
    return p


def _zero_frames(tmp_path: Path) -> Path:
    """A real container with a video stream that holds no frames (and some audio)."""
    import numpy as np

    p = tmp_path / "zero.mkv"
    with av.open(str(p), "w") as out:
        v = out.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        a = out.add_stream("aac", rate=8000, layout="mono")
        af = av.AudioFrame.from_ndarray(np.zeros((1, 4096), np.float32), format="fltp", layout="mono")
        af.sample_rate = 8000
        af.pts, af.time_base = 0, Fraction(1, 8000)
        for pk in list(a.encode(af)) + list(a.encode()):
            out.mux(pk)
        for pk in v.encode():
            out.mux(pk)
    assert p.stat().st_size > 0
    with av.open(str(p)) as c:
        assert any(s.type == "video" for s in c.streams)
    return p


@pytest.mark.parametrize("kind", ["missing", "not_media", "truncated", "audio_only", "empty", "zero_frames",
                                  "stalled_timestamps"])
def test_bad_inputs_fail_cleanly_with_exit_1(tmp_path, fake, register_fake, kind):
    path = {
        "missing": lambda: tmp_path / "nope.mp4",
        "not_media": lambda: (tmp_path / "text.mp4").write_text("hello, this is not a video") and tmp_path / "text.mp4",
        "truncated": lambda: _truncated(tmp_path),
        "audio_only": lambda: _audio_only(tmp_path),
        "empty": lambda: (tmp_path / "empty.mov").write_bytes(b"") or tmp_path / "empty.mov",
        "zero_frames": lambda: _zero_frames(tmp_path),
        "stalled_timestamps": lambda: make_stalled_timestamps(tmp_path / "stalled.mp4"),
    }[kind]()
    before = {p.name for p in tmp_path.iterdir()}
    r = invoke(path, "--model", "fake", "--device", "cpu", "--json")
    assert r.exit_code == 1, (r.stdout, r.stderr)
    line = one_line_error(r)
    assert len(line) < 300
    rec = json.loads(r.stdout)
    assert rec["status"] == "error" and rec["error"]
    assert {p.name for p in tmp_path.iterdir()} == before  # nothing written, nothing left behind
    if kind == "stalled_timestamps":  # said before any frame is colourized, and what to do
        assert "frame 1's timestamp (0.000 s) does not come after frame 0's" in line and "setpts" in line
        assert rec.get("frames", 0) == 0
        # the same on the path without segments (several colourings written at once)
        register_fake("fake_diverse", diverse=True)
        r = invoke(path, "--model", "fake_diverse", "--device", "cpu", "--diverse", "2", "--pick", "all")
        assert r.exit_code == 1 and "does not come after frame 0's" in one_line_error(r)
        assert {p.name for p in tmp_path.iterdir()} == before


def test_failing_file_in_a_batch_exit_1_others_done(tmp_path, fake):
    a = make_clip(tmp_path / "a.mp4", frames=3, audio=False)
    bad = tmp_path / "b.mp4"
    bad.write_bytes(b"\x00" * 100)
    c = make_clip(tmp_path / "c.mkv", frames=3, audio=False)
    r = invoke(a, bad, c, "-o", tmp_path / "out", "--model", "fake", "--device", "cpu", "--json")
    assert r.exit_code == 1
    st = [json.loads(l)["status"] for l in r.stdout.splitlines()]
    assert st == ["done", "error", "done"]
    assert (tmp_path / "out" / "a_colorized.mp4").exists() and (tmp_path / "out" / "c_colorized.mkv").exists()


def test_model_error_mid_film_is_one_line_traceback_with_debug(tmp_path, register_fake, clip):
    register_fake("boom", fail_at=3)
    r = invoke(clip, "--model", "boom", "--device", "cpu")
    assert r.exit_code == 1 and "fake model failure" in one_line_error(r)
    assert not (tmp_path / "film_colorized.mp4").exists()
    r = invoke(clip, "--model", "boom", "--device", "cpu", "--debug")
    assert r.exit_code == 1 and "Traceback" in r.stderr


def test_ctrl_c_exit_130_nothing_half_written(tmp_path, register_fake, clip):
    register_fake("stop", interrupt_at=3)
    before = {p.name for p in tmp_path.iterdir()}
    r = invoke(clip, "--model", "stop", "--device", "cpu", "--json")
    assert r.exit_code == 130
    assert "interrupted" in one_line_error(r)
    assert json.loads(r.stdout)["status"] == "interrupted"
    assert {p.name for p in tmp_path.iterdir()} == before


def test_sigterm_behaves_like_ctrl_c(tmp_path, register_fake, clip):
    import signal

    register_fake("term", sigterm_at=2)
    before = {p.name for p in tmp_path.iterdir()}
    handler = signal.getsignal(signal.SIGTERM)
    r = invoke(clip, "--model", "term", "--device", "cpu")
    assert r.exit_code == 130 and "interrupted" in one_line_error(r)
    assert {p.name for p in tmp_path.iterdir()} == before
    assert signal.getsignal(signal.SIGTERM) is handler  # restored


def test_usage_errors_exit_2(tmp_path, fake, register_fake, clip):
    register_fake("fakeref", needs_reference=True)
    cases = [
        ((clip, "--model", "no-such-model"), "no-such-model"),
        ((clip, "--model", "fake", "-o", clip), "is the input itself"),
        ((clip, "--model", "fakeref", "--ref", tmp_path / "missing.jpg"), "no such file"),
        ((clip, "--model", "fake", "--codec", "no-such-codec"), "no such encoder"),
        ((clip, "--model", "fake", "--render-size", "3"), "render-size"),
        ((clip, "--model", "fakeref"), "needs a colour reference"),
    ]
    if not torch.cuda.is_available():
        cases.append(((clip, "--model", "fake", "--device", "cuda"), "CUDA is not available"))
    not_image = tmp_path / "ref.jpg"
    not_image.write_text("not a picture")
    cases.append(((clip, "--model", "fakeref", "--ref", not_image), "ref.jpg"))
    for args, msg in cases:
        r = invoke(*args)
        assert r.exit_code == 2, (args, r.stdout, r.stderr)
        assert msg in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr
    assert not (tmp_path / "film_colorized.mp4").exists()


def test_ref_selects_the_exemplar_default(monkeypatch, tmp_path, register_fake, clip):
    import colorize.pipeline.config as config

    built = register_fake("fakeref", needs_reference=True)
    monkeypatch.setattr(config, "DEFAULT_REFERENCE_MODEL", "fakeref")
    still = make_still(tmp_path / "still.jpg")
    r = invoke(clip, "--ref", still, "--device", "cpu", "--json")
    assert r.exit_code == 0, r.stderr
    rec = json.loads(r.stdout)
    assert rec["model"] == "fakeref" and rec["shots"][0]["reference"] == str(still)
    assert len(built) == 1


def test_output_location_not_writable(tmp_path, fake, clip):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = invoke(clip, "--model", "fake", "--device", "cpu", "-o", blocker / "out.mp4")
    assert r.exit_code == 1 and "out" in one_line_error(r)
    if os.geteuid() != 0:  # root ignores permissions
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        r = invoke(clip, "--model", "fake", "--device", "cpu", "-o", ro / "out.mp4")
        assert r.exit_code == 1 and "not writable" in one_line_error(r)


def test_output_folder_by_trailing_slash_and_extensionless_output(tmp_path, fake, clip):
    r = invoke(clip, "--model", "fake", "--device", "cpu", "-o", str(tmp_path / "new") + "/", "--json")
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "new" / "film_colorized.mp4").exists()
    r = invoke(clip, "--model", "fake", "--device", "cpu", "-o", tmp_path / "noext")
    assert r.exit_code == 2 and "extension" in r.stderr


def test_model_option_the_model_does_not_take_is_usage_error(tmp_path, monkeypatch, clip):
    from colorize.models import registry
    from colorize.models.base import ModelInfo
    from tests.pipeline.fakes import FakeColorizer

    info = ModelInfo(name="strict", summary="-", paper="-", size_multiple=16, default_render_size=32)

    def builder(device, dtype, weights=None):  # takes no model options at all
        return FakeColorizer(info, device)

    registry._ensure_loaded()
    monkeypatch.setitem(registry._REGISTRY, "strict", registry._Entry(info, builder))
    r = invoke(clip, "--model", "strict", "--device", "cpu", "--refine-passes", "2")
    assert r.exit_code == 2 and "does not take --refine-passes" in r.stderr
