"""``--preview N``: keyframe seeks land on the right frames, warm-up runs, the sheet is labelled."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from colorize.io import probe
from colorize.pipeline.config import RunConfig
from colorize.pipeline.inputs import plan_jobs, walk_media
from colorize.pipeline.preview import (
    DEFAULT_WARMUP, GAP, HEADER_H, LABEL_H, THUMB_H, Previewer, SeekingReader, preview_path, sample_times,
    timecode,
)
from colorize.pipeline.runner import Runner
from tests.pipeline.fakes import decode_rgb, grey_frame, grey_yuv_frame, make_clip, make_still


def make_long_clip(path: Path, frames: int, gop: int = 24, width: int = 64, height: int = 48,
                   cut_at: int | None = None) -> Path:
    """Like fakes.make_clip, with a short GOP so that seeks have keyframes to land on."""
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=24)
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        v.options = {"crf": "10", "preset": "ultrafast", "g": str(gop), "keyint_min": str(gop)}
        for i in range(frames):
            shot = 0 if cut_at is None or i < cut_at else 1
            for p in v.encode(grey_yuv_frame(grey_frame(i, width, height, shot), i, Fraction(1, 24))):
                out.mux(p)
        for p in v.encode():
            out.mux(p)
    return path


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    return make_long_clip(tmp_path_factory.mktemp("preview") / "film.mp4", frames=960)


def test_sample_times_and_timecode():
    assert sample_times(40.0, 4) == [5.0, 15.0, 25.0, 35.0]
    assert timecode(3725.5) == "01:02:05.500"
    assert timecode(0) == "00:00:00.000"


def test_seek_lands_on_the_frame_a_full_decode_gives(long_clip):
    info = probe(long_clip)
    every = decode_rgb(long_clip)
    reader = SeekingReader(long_clip, info)
    try:
        for t in (0.0, 3.3, 17.0, 21.0, 39.95, 500.0):
            w = reader.window(t, before=3, after=2)
            target = w.source(w.target)
            want = min(len(every) - 1, round(t * 24))  # the nearest frame
            assert target.index == want
            assert np.array_equal(target.rgb, every[want])  # the right picture, not just the label
            warm = [w.source(i).index for i in range(w.target)]
            assert warm == list(range(want - len(warm), want)) and len(warm) == min(3, want)
            for i in range(w.target):
                assert np.array_equal(w.source(i).rgb, every[w.source(i).index])
    finally:
        reader.close()
    # keyframe seeks: a handful of GOPs, never the whole film
    assert reader.decoded < 6 * 40


def _preview(tmp_path, clip, count=4, **cfg):
    runner = Runner(RunConfig(device="cpu", **cfg))
    jobs = plan_jobs([clip], None, None)
    return list(Previewer(runner, count).run(jobs))


def test_preview_pushes_warmup_before_each_target_and_decodes_little(tmp_path, register_fake, long_clip):
    built = register_fake("fake", delay=2)
    (result,) = _preview(tmp_path, long_clip, count=4, model="fake")
    assert result.status == "done", result.error
    targets = [s["frame"] for s in result.samples]
    assert targets == [round(t * 24) for t in sample_times(40.0, 4)] == [120, 360, 600, 840]
    model = built[0]
    for t in targets:  # DEFAULT_WARMUP consecutive frames before each target, then the target
        k = model.pushed.index(t)
        assert model.pushed[k - DEFAULT_WARMUP:k + 1] == list(range(t - DEFAULT_WARMUP, t + 1))
    # the model held 2 frames back: the previewer pushed 2 more after each target, no more
    assert result.frames_colourized == 4 * (DEFAULT_WARMUP + 1 + 2) == len(model.pushed)
    assert len(model.resets_at) >= 4  # a fresh state for each window
    assert result.frames_decoded < 960 / 3
    assert result.film_frames == 960
    rec = result.as_json()
    assert rec["output"] == rec["preview"]["sheet"] == str(long_clip.with_name("film_preview.png"))
    assert long_clip.with_name("film_preview.png").exists()


def test_sheet_is_laid_out_and_coloured(tmp_path, register_fake):
    register_fake("fake", diverse=True)
    clip = make_long_clip(tmp_path / "reel.mp4", frames=96, width=96, height=48)
    (result,) = _preview(tmp_path, clip, count=3, model="fake", diverse=2)
    assert result.status == "done", result.error
    sheet = cv2.imread(str(preview_path(plan_jobs([clip], None, None)[0])))[..., ::-1]
    assert result.outputs == (tmp_path / "reel_preview.png",)
    tw = 2 * THUMB_H  # 96x48, square pixels
    assert sheet.shape[0] == HEADER_H + LABEL_H + 3 * (LABEL_H + THUMB_H + GAP)
    assert sheet.shape[1] == max(480, 3 * tw + 2 * GAP)
    y = HEADER_H + 2 * LABEL_H + THUMB_H // 2
    grey = sheet[y, tw // 2].astype(int)
    assert grey[0] == grey[1] == grey[2]  # the input column stays grey
    for c in (1, 2):  # the fake's candidates: orange, the second more saturated than the first
        px = sheet[y, c * (tw + GAP) + tw // 2].astype(int)
        assert px[0] > px[2] + 10
    sat = [np.ptp(sheet[y, c * (tw + GAP) + tw // 2].astype(int)) for c in (1, 2)]
    assert sat[1] > sat[0]
    # labelled: some dark text pixels in every row's label strip and in the header
    for row in range(3):
        top = HEADER_H + LABEL_H + row * (LABEL_H + THUMB_H + GAP)
        assert (sheet[top:top + LABEL_H, :200] < 100).any()
    assert (sheet[:HEADER_H, :200] < 100).any()


def test_several_references_each_sample_names_the_one_its_shot_took(tmp_path, register_fake):
    register_fake("fake_ref", needs_reference=True)
    clip = make_long_clip(tmp_path / "two.mp4", frames=192, cut_at=96)
    dark = make_still(tmp_path / "dark.png", rgb=(120, 90, 90))
    bright = make_still(tmp_path / "bright.png", rgb=(200, 200, 230))
    (result,) = _preview(tmp_path, clip, count=4, model="fake_ref", references=(str(dark), str(bright)))
    assert result.status == "done", result.error
    refs = [(s["frame"], Path(s["reference"]).name, s["reason"]) for s in result.samples]
    assert refs == [(24, "dark.png", "best match"), (72, "dark.png", "best match"),
                    (120, "bright.png", "best match"), (168, "bright.png", "best match")]


def test_still_preview_is_one_row(tmp_path, register_fake):
    register_fake("fake")
    photo = make_still(tmp_path / "photo.png", rgb=(90, 90, 90))
    (result,) = _preview(tmp_path, photo, count=12, model="fake")
    assert result.status == "done", result.error
    assert result.frames == 1 and (tmp_path / "photo_preview.png").exists()
    assert not (tmp_path / "photo_colorized.png").exists()


def test_folder_walk_skips_preview_sheets(tmp_path):
    make_clip(tmp_path / "a.mp4", frames=2, audio=False)
    make_still(tmp_path / "a_preview.png")
    make_still(tmp_path / "b.png")
    assert [p.name for p in walk_media(tmp_path)] == ["a.mp4", "b.png"]


def test_cli_preview_json_and_no_film_written(tmp_path, register_fake, long_clip):
    from tests.cli.test_cli_colorize import invoke

    register_fake("fake")
    r = invoke(long_clip, "-o", f"{tmp_path}/", "--model", "fake", "--device", "cpu", "--preview", "5", "--json",
               "--quiet")
    assert r.exit_code == 0, r.stderr
    rec = json.loads(r.stdout)
    assert rec["status"] == "done" and rec["frames"] == 5
    assert rec["output"] == str(tmp_path / "film_preview.png") and (tmp_path / "film_preview.png").exists()
    assert len(rec["preview"]["samples"]) == 5 and rec["preview"]["film_frames"] == 960
    assert sorted(p.name for p in tmp_path.iterdir()) == ["film_preview.png"]
    r = invoke(long_clip, "--model", "fake", "--device", "cpu", "--preview", "0")
    assert r.exit_code == 2 and "--preview" in r.stderr


@pytest.mark.parametrize("container", ["mp4", "mkv", "mov"])
def test_seek_with_b_frames_and_vfr_in_every_container(tmp_path, container):
    """B-frames (decode order differs from display order), VFR stamps, mp4/mov edit lists,
    Matroska cues: the target is the frame a full decode shows at that time."""
    from tests.media import make_clip as make_archival_clip

    clip = make_archival_clip(tmp_path / f"vfr.{container}", container=container, frames=300, vfr=True,
                              size=(48, 32))
    info = probe(clip)
    with av.open(str(clip)) as c:
        stream = c.streams.video[0]
        start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        every = [(float(f.pts * f.time_base) - start, f.to_ndarray(format="rgb24")) for f in c.decode(stream)]
    fps = float(info.fps)
    reader = SeekingReader(clip, info)
    try:
        for t in (0.4, 3.1, 7.77, every[-1][0] - 0.01):
            w = reader.window(t, before=2, after=1)
            k = next(i for i, (sec, _) in enumerate(every) if sec >= t - 0.5 / fps)
            assert np.array_equal(w.source(w.target).rgb, every[k][1]), (container, t, k)
            assert np.array_equal(w.source(w.target - 1).rgb, every[k - 1][1])
    finally:
        reader.close()


def test_short_film_gives_each_frame_at_most_once(tmp_path, register_fake):
    register_fake("fake", delay=1)
    clip = make_long_clip(tmp_path / "short.mp4", frames=5)
    (result,) = _preview(tmp_path, clip, count=12, model="fake")
    assert result.status == "done", result.error
    frames = [s["frame"] for s in result.samples]
    assert frames == sorted(set(frames)) and set(frames) <= set(range(5)) and len(frames) >= 4


def test_a_seek_that_lands_past_the_target_falls_back_to_decoding_from_the_start(long_clip):
    class LateSeeks:
        """A container whose index is off: stream seeks land 10 s late."""

        def __init__(self, c):
            self._c = c

        def seek(self, offset, stream=None, **kw):
            if stream is not None:
                offset += int(10 / float(stream.time_base))
            return self._c.seek(offset, stream=stream, **kw)

        def __getattr__(self, name):
            return getattr(self._c, name)

    info = probe(long_clip)
    every = decode_rgb(long_clip)
    reader = SeekingReader(long_clip, info)
    reader.container = LateSeeks(reader.container)
    try:
        w = reader.window(12.0, before=2, after=0)
        assert w.source(w.target).index == 288
        assert np.array_equal(w.source(w.target).rgb, every[288])
        assert [w.source(i).index for i in range(w.target)] == [286, 287]
        assert reader.decoded > 288  # it did decode from the start
    finally:
        reader.close()
