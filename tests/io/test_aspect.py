"""Non-square pixels (a 4:3-pixel PAL transfer, anamorphic scans) survive every container x
encoder the writer offers, in the container header and, for FFV1, in the bitstream itself."""

from __future__ import annotations

import shutil
import zlib
from fractions import Fraction

import av
import av.logging
import numpy as np
import pytest

from colorize.io import EncodeOptions, MediaWriter, iter_frames, probe
from colorize.io.matroska import _children, _find_tracks, _read_size, write_display_aspect
from tests.media import make_clip, read_video

SAR = Fraction(4, 3)


def _colorize(src, dst, codec):
    info = probe(src)
    with MediaWriter(dst, info, EncodeOptions(codec=codec, preset="ultrafast")) as w:
        for frame in iter_frames(src, info):
            w.write(frame, np.full((info.height, info.width, 2), 20.0, np.float32))


def _decoded_frame_sar(path) -> str:
    """The SAR the decoder puts on the first frame (FFmpeg's showinfo reports it; PyAV frames
    do not expose it)."""
    with av.open(str(path)) as c:
        frame = next(c.decode(c.streams.video[0]))
    g = av.filter.Graph()
    src = g.add("buffer", video_size=f"{frame.width}x{frame.height}",
                pix_fmt=str(int(av.VideoFormat(frame.format.name))), time_base="1/1000", pixel_aspect="1/1")
    info, sink = g.add("showinfo"), g.add("buffersink")
    src.link_to(info)
    info.link_to(sink)
    g.configure()
    level = av.logging.get_level()
    av.logging.set_level(av.logging.INFO)
    try:
        with av.logging.Capture() as logs:
            g.vpush(frame)
            g.vpull()
    finally:
        av.logging.set_level(level)
    line = next(m for _, name, m in logs if name == "showinfo" and " sar:" in m)
    return line.split(" sar:")[1].split()[0]


@pytest.mark.parametrize("src_container, out_ext, codec", [
    ("mkv", "mkv", "ffv1"), ("mkv", "mkv", "libx264"), ("mov", "mov", "libx264"), ("mp4", "mp4", "libx264"),
    ("mkv", "mkv", "libx265"),
])
def test_pixel_aspect_ratio_survives(tmp_path, src_container, out_ext, codec):
    src = make_clip(tmp_path / f"pal.{src_container}", src_container, size=(66, 38), frames=3, sar=SAR)
    assert probe(src).sar == SAR
    out = tmp_path / f"out.{out_ext}"
    _colorize(src, out, codec)
    assert probe(out).sar == SAR
    assert len(read_video(out)[0]) == 3  # still a playable file after the header edit
    if codec == "ffv1":  # FFV1 slices carry it too, so a re-wrap into another container keeps it
        assert _decoded_frame_sar(out) == "4/3"


def test_square_pixels_stay_square(tmp_path):
    src = make_clip(tmp_path / "sq.mkv", "mkv", size=(66, 38), frames=2)
    out = tmp_path / "sq_out.mkv"
    _colorize(src, out, "ffv1")
    assert probe(out).sar == 1
    assert _decoded_frame_sar(out) == "0/1"  # unknown, as FFmpeg writes square pixels


def _tracks_crc_ok(path) -> bool:
    with open(path, "rb") as f:
        _, tracks = _find_tracks(f)
    _, size_len = _read_size(tracks, 4)  # after the 4-byte Tracks id
    body = 4 + size_len
    first = next(_children(tracks, body, len(tracks)))
    assert first[0] == 0xBF
    return int.from_bytes(tracks[first[2]:first[3]], "little") == zlib.crc32(tracks[first[3]:])


def test_header_edit_touches_only_the_track_header(tmp_path):
    src = make_clip(tmp_path / "sq.mkv", "mkv", size=(66, 38), frames=3, audio_tracks=1, subtitles=True)
    assert probe(src).sar == 1
    edited = tmp_path / "edited.mkv"
    shutil.copy(src, edited)
    with open(edited, "r+b") as f:
        undo = write_display_aspect(f, 1, 66, 38, SAR)
    assert undo is not None
    offset, original = undo
    before, after = src.read_bytes(), edited.read_bytes()
    assert len(after) == len(before)
    assert after[:offset] == before[:offset]
    assert after[offset + len(original):] == before[offset + len(original):]
    assert after != before and _tracks_crc_ok(edited) and _tracks_crc_ok(src)
    assert probe(edited).sar == SAR
    t0, y0, _ = read_video(src)
    t1, y1, _ = read_video(edited)
    assert t0 == t1 and all(np.array_equal(a, b) for a, b in zip(y0, y1))


def test_header_edit_without_room_changes_nothing(tmp_path):
    src = make_clip(tmp_path / "sq.mkv", "mkv", size=(66, 38), frames=2)
    before = src.read_bytes()
    awkward = Fraction(1_000_003, 1_000_000)  # a display ratio too long for the reserved bytes
    with open(src, "r+b") as f:
        assert write_display_aspect(f, 1, 66, 38, awkward) is None
    assert src.read_bytes() == before
