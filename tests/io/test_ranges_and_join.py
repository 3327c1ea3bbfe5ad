"""Range decoding (keyframe seek) and joining segments by stream copy."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from colorize.io import EncodeOptions, MediaError, MediaWriter, iter_frame_range, iter_frames, probe
from colorize.io.decode import iter_raw_frames, luma_l
from colorize.io.join import join_parts, part_suffix
from tests.media import make_clip, read_packets, read_video


@pytest.fixture(scope="module")
def film(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ranges")
    # B-frames, VFR timestamps, two audio tracks and subtitles: everything a join must keep.
    return make_clip(folder / "film.mp4", "mp4", frames=30, vfr=True, sar=Fraction(4, 3), audio_tracks=2,
                     subtitles=True, title="Reel 1")


@pytest.mark.parametrize("start,stop", [(0, 5), (7, 19), (25, None)])
def test_a_range_decodes_the_same_frames_as_the_whole_file(film, start, stop):
    info = probe(film)
    whole = list(iter_frames(film, info))
    pts = whole[start].pts
    for start_pts in (pts, None, pts + 1):  # seek, no seek, a pts no frame has (decode from the start)
        got = list(iter_frame_range(film, info, start, stop, start_pts))
        want = whole[start:stop]
        assert [g.index for g in got] == [w.index for w in want]
        assert [g.pts for g in got] == [w.pts for w in want]
        assert all(np.array_equal(g.rgb, w.rgb) for g, w in zip(got, want))


def test_luma_plane_gives_the_runners_l(film):
    from colorize.color.merge import full_l

    info = probe(film)
    for (i, frame), src in zip(iter_raw_frames(film, info), iter_frames(film, info)):
        assert np.abs(luma_l(frame, info) - full_l(src.rgb)[0].numpy()).max() < 0.6  # one code value


def _encode(src, info, frames, out, copy_streams=True):
    with MediaWriter(out, info, EncodeOptions(), copy_streams=copy_streams) as w:
        for f in frames:
            w.write(f, np.full((info.height, info.width, 2), 25.0, np.float32))
    return out


def test_joined_parts_keep_timestamps_audio_subtitles_and_tags(film, tmp_path):
    info = probe(film)
    frames = list(iter_frames(film, info))
    one = _encode(film, info, frames, tmp_path / "one.mp4")
    assert part_suffix(EncodeOptions()) == ".mov"
    parts = [_encode(film, info, frames[a:b], tmp_path / f"p{a}.mov", copy_streams=False)
             for a, b in ((0, 11), (11, 12), (12, 30))]
    with av.open(str(parts[0])) as c:
        assert [s.type for s in c.streams] == ["video"]  # parts hold the video alone
    joined = join_parts(parts, tmp_path / "joined.mp4", info, EncodeOptions(), expected_frames=30)
    t1, y1, last1 = read_video(one)
    t2, y2, last2 = read_video(joined)
    assert t1 == t2 and len(t2) == 30
    assert max(np.abs(a.astype(int) - b.astype(int)).max() for a, b in zip(y1, y2)) <= 12  # codec loss only
    for kind in ("audio", "subtitle"):
        assert read_packets(one, kind) == read_packets(joined, kind)
    assert probe(joined).metadata.get("title") == "Reel 1" and probe(joined).sar == Fraction(4, 3)
    with pytest.raises(MediaError, match="hold 12 frames, 30 expected"):
        join_parts(parts[:2], tmp_path / "short.mp4", info, EncodeOptions(), expected_frames=30)
    assert not (tmp_path / "short.mp4").exists()
    assert sorted(p.name for p in tmp_path.glob(".*partial*")) == []


def test_parts_with_other_settings_are_refused(film, tmp_path):
    info = probe(film)
    frames = list(iter_frames(film, info))[:4]
    a = _encode(film, info, frames[:2], tmp_path / "a.mov", copy_streams=False)
    with MediaWriter(tmp_path / "b.mov", info, EncodeOptions(crf=30, preset="ultrafast"), copy_streams=False) as w:
        for f in frames[2:]:
            w.write(f, np.zeros((info.height, info.width, 2), np.float32))
    with pytest.raises(MediaError, match="other settings"):
        join_parts([a, tmp_path / "b.mov"], tmp_path / "out.mp4", info)
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize("codec", ["libx264", "libx265"])
def test_every_part_starts_with_a_keyframe_and_the_join_decodes_cleanly(film, tmp_path, codec):
    if codec not in av.codecs_available:
        pytest.skip(f"{codec} not in this FFmpeg build")
    info = probe(film)
    frames = list(iter_frames(film, info))
    opts = EncodeOptions(codec=codec, preset="ultrafast")
    parts = []
    for a, b in ((0, 9), (9, 21), (21, 30)):
        p = tmp_path / f"p{a}{part_suffix(opts)}"
        with MediaWriter(p, info, opts, copy_streams=False) as w:
            for f in frames[a:b]:
                w.write(f, np.full((info.height, info.width, 2), -20.0, np.float32))
        with av.open(str(p)) as c:
            first = next(pk for pk in c.demux(video=0) if pk.size)
            assert first.is_keyframe
        parts.append(p)
    out = join_parts(parts, tmp_path / "joined.mp4", info, opts, expected_frames=30)
    with av.open(str(out)) as c:
        c.streams.video[0].codec_context.options = {"err_detect": "explode"}
        decoded = [f.pts * f.time_base for f in c.decode(video=0)]
    assert decoded == [f.pts * f.time_base for f in frames]
