"""Messages and options say what the tool does: one error form, close-match hints, inputs named as
given, containers we cannot write refused, train/eval help that fits those commands, docs that match."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.cli.test_cli_colorize import invoke, one_line_error
from tests.pipeline.fakes import make_clip

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake(register_fake):
    return register_fake("fake", delay=1)


def _only_error_line(r) -> str:
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("colorize: error: "), r.stderr
    assert "Usage:" not in r.stderr and "Traceback" not in r.stderr
    return lines[0]


def test_click_usage_errors_have_the_documented_form_and_suggest_the_close_model(tmp_path):
    r = invoke(tmp_path / "film.mp4", "--model", "lstn")
    assert r.exit_code == 2
    line = _only_error_line(r)
    assert "did you mean lstm?" in line and "'colorize --help'" in line
    r = invoke("train", "--model", "selfrg", "--data", tmp_path)
    assert r.exit_code == 2 and "did you mean selfreg?" in _only_error_line(r)
    r = invoke(tmp_path / "film.mp4", "--modle", "lstm")
    assert r.exit_code == 2 and "--model" in _only_error_line(r)
    r = invoke()
    assert r.exit_code == 2 and "INPUT" in _only_error_line(r)


def test_pick_all_without_diverse_is_refused(tmp_path, fake):
    clip = make_clip(tmp_path / "film.mp4", frames=2, audio=False)
    r = invoke(clip, "--model", "fake", "--pick", "all")
    assert r.exit_code == 2 and "--diverse" in _only_error_line(r)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["film.mp4"]


def test_errors_name_the_input_as_given(tmp_path, fake):
    reels = tmp_path / "reels"
    for sub in ("day", "night"):
        (reels / sub).mkdir(parents=True)
        (reels / sub / "reel1.mp4").write_bytes(b"not a film")
    r = invoke("reels", "-o", "out", "--model", "fake", "--device", "cpu", cwd=tmp_path)
    assert r.exit_code == 1
    errors = [l for l in r.stderr.splitlines() if l.startswith("colorize: error:")]
    assert any("reels/day/reel1.mp4: " in l for l in errors) and any("reels/night/reel1.mp4: " in l for l in errors)


def test_output_container_that_cannot_keep_timestamps_is_refused(tmp_path, fake):
    clip = make_clip(tmp_path / "film.mp4", frames=2, audio=False)
    r = invoke(clip, "-o", tmp_path / "film.avi", "--model", "fake", "--device", "cpu")
    assert r.exit_code == 2
    line = _only_error_line(r)
    assert "film.avi" in line and ".mkv" in line and ".mp4" in line and ".mov" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["film.mp4"]


def test_train_help_offers_only_trainable_models_and_says_where_runs_go(tmp_path):
    r = invoke("train", "--help")
    assert r.exit_code == 0
    choices = re.search(r"--model \[([^\]]+)\]", r.stdout).group(1).split("|")
    assert "devc" not in choices and {"lstm", "selfreg", "exemplar"} <= set(choices)
    assert "half precision" not in r.stdout
    flat = " ".join(r.stdout.split())
    assert "--out PATH Folder for checkpoints and the CSV log. Default: ~/.cache/colorize/runs/MODEL." in flat
    r = invoke("train", "--model", "devc", "--data", tmp_path)
    assert r.exit_code == 2 and "devc" in _only_error_line(r)


def test_eval_propagate_is_a_flag(monkeypatch, tmp_path, fake):
    import colorize.evaluation as evaluation

    seen = {}

    class Report:
        def as_dict(self):
            return {}

    monkeypatch.setattr(evaluation, "cli_eval", lambda **kw: seen.update(kw) or Report(), raising=False)
    r = invoke("eval", "--help")
    assert "--propagate" in r.stdout and "--ref-mode" not in r.stdout and "colour clips" in r.stdout
    r = invoke("eval", "--model", "fake", tmp_path, "--propagate", "--json")
    assert r.exit_code == 0, r.stderr
    assert seen["ref_mode"] == "first-frame"
    r = invoke("eval", "--model", "fake", tmp_path, "--json")
    assert r.exit_code == 0 and seen["ref_mode"] is None


def test_devc_doc_names_batch_size_as_the_benchmarks_option(tmp_path):
    r = invoke(tmp_path / "film.mp4", "--batch-size", "4")
    assert r.exit_code == 2  # colorize has no such flag ...
    lines = [l for l in (ROOT / "docs" / "devc.md").read_text().splitlines() if "--batch-size" in l]
    assert lines and all("benchmarks/devc.py" in l for l in lines)  # ... the doc says whose it is


def test_readme_says_one_suite_duration_and_names_no_private_folder():
    text = (ROOT / "README.md").read_text()
    durations = set(re.findall(r"(a few minutes|under a minute|about a minute|\d+ minutes?)", text))
    assert len(durations) == 1, durations
    use = re.search(r"## Use\n\n```text\n(.*?)```", text, flags=re.S).group(1)
    assert "dev_eval" not in use and "colorize eval" in use


def test_pick_all_json_names_written_files(tmp_path, register_fake):
    register_fake("fakediv", diverse=True)
    clip = make_clip(tmp_path / "d.mp4", frames=3, audio=False)
    r = invoke(clip, "--model", "fakediv", "--device", "cpu", "--diverse", "2", "--pick", "all", "--json")
    assert r.exit_code == 0, r.stderr
    rec = json.loads(r.stdout)
    assert rec["output"] == [str(tmp_path / f"d_colorized_{i}.mp4") for i in range(2)]
    assert all(Path(p).exists() for p in rec["output"])
    assert rec["picked"] is None and len(rec["saturations"]) == 2
    assert "done: " + str(tmp_path / "d_colorized_0.mp4") in r.stderr
    assert f"-> {tmp_path / 'd_colorized_0.mp4'}, {tmp_path / 'd_colorized_1.mp4'} (3 frames)" in r.stderr
    assert not (tmp_path / "d_colorized.mp4").exists()
