"""``colorize FILM --executor ray``: the same film as ``--executor local``; without Ray, how to get it."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from tests.cli.test_cli_colorize import invoke
from tests.pipeline.fakes import decode_planes, make_clip


def test_executor_ray_without_ray_says_how_to_install_it(tmp_path, register_fake, monkeypatch):
    register_fake("fake")
    clip = make_clip(tmp_path / "film.mp4", frames=4)
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    r = invoke(clip, "--model", "fake", "--device", "cpu", "--executor", "ray")
    assert r.exit_code == 2
    assert 'pip install "colorize[ray]"' in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "film_colorized.mp4").exists()


@pytest.mark.parametrize("extra", [("--segment-frames", "0"), ("--diverse", "2")])
def test_executor_ray_with_one_piece_runs_is_refused(tmp_path, register_fake, extra):
    register_fake("fake", diverse=True)
    clip = make_clip(tmp_path / "film.mp4", frames=4)
    r = invoke(clip, "--model", "fake", "--device", "cpu", "--executor", "ray", *extra)
    assert r.exit_code == 2 and "one piece" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["film.mp4"]


def test_unknown_executor_is_refused(tmp_path):
    r = invoke(tmp_path / "x.mp4", "--executor", "dask")
    assert r.exit_code == 2 and "--executor" in r.stderr


def test_executor_ray_on_a_local_cluster_equals_local(tmp_path):
    pytest.importorskip("ray")
    clip = make_clip(tmp_path / "film.mp4", frames=30, width=64, height=48, cut_at=18)
    common = ("--model", "lstm", "--device", "cpu", "--threads", "1", "--segment-frames", "8", "-q")
    r = invoke(clip, "-o", tmp_path / "local.mp4", *common)
    assert r.exit_code == 0, r.stderr
    r = invoke(clip, "-o", tmp_path / "ray.mp4", "--executor", "ray", *common)
    assert r.exit_code == 0, r.stderr
    a, b = decode_planes(tmp_path / "local.mp4"), decode_planes(tmp_path / "ray.mp4")
    assert len(a) == len(b) == 30
    assert all(np.array_equal(x, y) for pa, pb in zip(a, b) for x, y in zip(pa, pb))
