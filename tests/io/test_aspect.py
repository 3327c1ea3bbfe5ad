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
from colorize.io.matroska import _children, _segment_head, write_display_aspect
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
    ("mkv", "webm", "libvpx-vp9"), ("mkv", "mkv", "libx265"),
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


def _header_ok(path) -> bool:
    """Every level-1 element before the clusters whose first child is a CRC-32 matches it, and
    every SeekHead entry points at an element with the id it names."""
    with open(path, "rb") as f:
        seg, head, children = _segment_head(f)
        data_all = f.seek(0) or f.read()
    for eid, _, data, end in children:
        if eid != 0x114D9B74:
            continue
        for k, _, s_data, s_end in _children(head, data, end):
            if k != 0x4DBB:  # Seek (the other child is the CRC-32)
                continue
            fields = {k: head[d:e] for k, _, d, e in _children(head, s_data, s_end)}
            target, pos = fields[0x53AB], int.from_bytes(fields[0x53AC], "big")
            if data_all[seg + pos:seg + pos + len(target)] != target:
                return False
    for eid, start, data, end in children:
        if eid == 0xEC:  # Void: no children
            continue
        first = next(_children(head, data, end), None)
        if first is not None and first[0] == 0xBF:
            if int.from_bytes(head[first[2]:first[3]], "little") != zlib.crc32(head[first[3]:end]):
                return False
    return True


@pytest.mark.parametrize("ext, codec", [("mkv", "ffv1"), ("webm", "libvpx-vp9")])
def test_header_edit_touches_only_the_header(tmp_path, ext, codec):
    """Matroska: room from the track entry's Void. WebM (no such Void): room from the Void after
    the SeekHead, sliding Info down. Either way the file keeps its size and every byte from the
    end of the track header on."""
    src = make_clip(tmp_path / "sq.mkv", "mkv", size=(66, 38), frames=3)
    plain = tmp_path / f"plain.{ext}"
    _colorize(src, plain, codec)
    assert probe(plain).sar == 1
    edited = tmp_path / f"edited.{ext}"
    shutil.copy(plain, edited)
    with open(edited, "r+b") as f:
        seg, _, children = _segment_head(f)
        tracks_end = seg + children[-1][3]
        undo = write_display_aspect(f, 1, 66, 38, SAR, webm=ext == "webm")
    assert undo is not None
    offset, original = undo
    before, after = plain.read_bytes(), edited.read_bytes()
    assert len(after) == len(before) and after != before
    assert offset + len(original) == tracks_end
    assert after[:offset] == before[:offset] and after[tracks_end:] == before[tracks_end:]
    assert _header_ok(plain) and _header_ok(edited)
    assert probe(edited).sar == SAR
    t0, y0, _ = read_video(plain)
    t1, y1, _ = read_video(edited)
    assert t0 == t1 and all(np.array_equal(a, b) for a, b in zip(y0, y1))


def test_header_edit_refuses_what_it_does_not_understand(tmp_path):
    mkv = make_clip(tmp_path / "sq.mkv", "mkv", size=(66, 38), frames=2)
    mp4 = make_clip(tmp_path / "sq.mp4", "mp4", size=(66, 38), frames=2)
    for path, track in ((mkv, 7), (mp4, 1)):  # no such track; not Matroska at all
        before = path.read_bytes()
        with open(path, "r+b") as f:
            assert write_display_aspect(f, track, 66, 38, SAR) is None
        assert path.read_bytes() == before
