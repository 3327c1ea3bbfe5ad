"""The whole tool on an archivist's kind of file (VFR, non-square pixels, two audio tracks,
subtitles, a title), through the command line: everything but the chroma survives."""

from __future__ import annotations

import json
from fractions import Fraction

import av
import numpy as np
import pytest
from click.testing import CliRunner

from colorize.cli.main import cli
from colorize.io import probe
from tests.media import make_clip, read_packets, read_video


@pytest.mark.parametrize("container, codec", [
    ("mkv", "ffv1"), ("mkv", None), ("mov", None), ("mp4", None),
])
def test_everything_but_chroma_survives(tmp_path, register_fake, container, codec):
    register_fake("fake", delay=2)
    src = make_clip(tmp_path / f"reel.{container}", container=container, frames=10, vfr=True,
                    sar=Fraction(4, 3), audio_tracks=2, subtitles=True, title="Reel 3")
    args = [str(src), "--model", "fake", "--device", "cpu", "--json", "--quiet"]
    if codec:
        args += ["--codec", codec]
    r = CliRunner().invoke(cli, args, prog_name="colorize", catch_exceptions=False)
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)["output"]
    assert out.endswith(f"reel_colorized.{container}")

    t_in, y_in, _ = read_video(src)
    t_out, y_out, last = read_video(out)
    assert t_out == t_in  # every frame, every (VFR) timestamp
    if codec == "ffv1":
        assert all(np.array_equal(a, b) for a, b in zip(y_in, y_out))  # luma bit-identical
    else:
        assert max(np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(y_in, y_out)) < 1.5
    assert probe(out).sar == probe(src).sar == Fraction(4, 3)
    for kind in ("audio", "subtitle"):
        assert read_packets(out, kind) == read_packets(src, kind)  # copied packet for packet
    with av.open(out) as c:
        v = c.streams.video[0]
        assert c.metadata.get("title") == "Reel 3"
        frame = next(c.decode(v))
        u = np.frombuffer(frame.planes[1], np.uint8)
        assert np.abs(u.astype(int) - 128).max() > 5  # the chroma is no longer neutral


def test_lossless_master_keeps_luma_bit_identical(tmp_path, register_fake):
    register_fake("fake")
    src = make_clip(tmp_path / "reel.mkv", container="mkv", frames=6, vfr=True, audio_tracks=1)
    r = CliRunner().invoke(cli, [str(src), "--model", "fake", "--device", "cpu", "--codec", "ffv1", "--quiet"],
                           prog_name="colorize", catch_exceptions=False)
    assert r.exit_code == 0, r.stderr
    t_in, y_in, _ = read_video(src)
    t_out, y_out, _ = read_video(tmp_path / "reel_colorized.mkv")
    assert t_out == t_in and len(y_out) == 6
    assert all(np.array_equal(a, b) for a, b in zip(y_in, y_out))
    assert read_packets(tmp_path / "reel_colorized.mkv", "audio") == read_packets(src, "audio")
