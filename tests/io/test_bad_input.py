"""Every bad input gets a MediaError with a clear one-line message, before any work is done."""

from __future__ import annotations

import numpy as np
import pytest

from colorize.io import MediaError, iter_frames, probe
from tests.media import make_audio_only, make_clip, make_stalled_timestamps, make_unknown_codec, make_zero_frames


def _error(path) -> str:
    with pytest.raises(MediaError) as info:
        probe(path)
    message = str(info.value)
    assert "\n" not in message and path.name in message
    return message


def test_missing_file(tmp_path):
    assert "no such file" in _error(tmp_path / "nothing.mp4")


def test_folder_is_not_a_file(tmp_path):
    assert "folder" in _error(tmp_path)


def test_empty_file(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    assert "empty" in _error(tmp_path / "empty.mp4")


@pytest.mark.parametrize("name", ["noise.mp4", "noise.bin", "noise.mkv"])
def test_random_bytes(tmp_path, name):
    (tmp_path / name).write_bytes(np.random.default_rng(1).bytes(20_000))
    assert "not a media file" in _error(tmp_path / name)


def test_text_file(tmp_path):
    # FFmpeg's "tty" demuxer would happily "play" a .txt file as ANSI-art video.
    (tmp_path / "notes.txt").write_text("Reel 3, scene 2: the train arrives.\n" * 50)
    assert "not a media file" in _error(tmp_path / "notes.txt")


def test_audio_only(tmp_path):
    assert "no video stream (audio only)" in _error(make_audio_only(tmp_path / "sound.mka"))


def test_zero_video_frames(tmp_path):
    assert "zero frames" in _error(make_zero_frames(tmp_path / "zero.mkv"))


def test_unsupported_codec(tmp_path):
    assert "unsupported video codec" in _error(make_unknown_codec(tmp_path / "odd.mkv"))


def test_truncated_mp4_without_index(tmp_path):
    full = make_clip(tmp_path / "full.mp4", "mp4", frames=30).read_bytes()
    (tmp_path / "cut.mp4").write_bytes(full[: len(full) // 2])  # the moov index is at the end
    assert "truncated" in _error(tmp_path / "cut.mp4")


def _frames_error(path) -> str:
    info = probe(path)
    with pytest.raises(MediaError) as err:
        for _ in iter_frames(path, info):
            pass
    message = str(err.value)
    assert "\n" not in message and "truncated" in message
    return message


def test_truncated_mp4_with_index_first(tmp_path):
    full = make_clip(tmp_path / "full.mp4", "mp4", frames=30, faststart=True).read_bytes()
    (tmp_path / "cut.mp4").write_bytes(full[: int(len(full) * 0.6)])
    assert "of 30 frames" in _frames_error(tmp_path / "cut.mp4")


def test_truncated_matroska(tmp_path):
    full = make_clip(tmp_path / "full.mkv", "mkv", frames=30).read_bytes()
    (tmp_path / "cut.mkv").write_bytes(full[: len(full) // 2])
    assert "stops at" in _frames_error(tmp_path / "cut.mkv")


def test_complete_file_is_not_called_truncated(tmp_path):
    for container in ("mkv", "mp4"):
        path = make_clip(tmp_path / f"ok.{container}", container, frames=30, vfr=True)
        assert sum(1 for _ in iter_frames(path, probe(path))) == 30


@pytest.mark.parametrize("name", ["bad.png", "bad.jpg"])
def test_corrupt_image(tmp_path, name):
    (tmp_path / name).write_bytes(b"\x89PNG\r\n\x1a\n" + np.random.default_rng(2).bytes(300))
    assert "image" in _error(tmp_path / name)


def test_audio_with_cover_art_is_not_a_film(tmp_path):
    import cv2

    cover = cv2.imencode(".jpg", np.full((32, 32, 3), 90, np.uint8))[1].tobytes()
    message = _error(make_audio_only(tmp_path / "album.mka", cover=cover))
    assert "no video stream" in message and "cover art" in message


def test_picture_size_change_mid_stream(tmp_path):
    import av

    def raw(path, width, frames):
        with av.open(str(path), "w", format="h264") as out:
            v = out.add_stream("libx264", rate=25)
            v.width, v.height, v.pix_fmt = width, 48, "yuv420p"
            for i in range(frames):
                frame = av.VideoFrame.from_ndarray(np.full((48, width, 3), 20 * i, np.uint8), format="rgb24")
                frame.pts = i
                for p in v.encode(frame):
                    out.mux(p)
            for p in v.encode(None):
                out.mux(p)
        return path.read_bytes()

    joined = tmp_path / "joined.h264"  # two recordings glued together
    joined.write_bytes(raw(tmp_path / "a.h264", 64, 4) + raw(tmp_path / "b.h264", 80, 4))
    info = probe(joined)
    with pytest.raises(MediaError, match="size changes at frame 4"):
        for _ in iter_frames(joined, info):
            pass


def test_frames_whose_timestamps_stall_are_refused_where_they_stall(tmp_path):
    path = make_stalled_timestamps(tmp_path / "stalled.mp4")
    info = probe(path)  # the header is fine
    frames = iter_frames(path, info)
    assert next(frames).index == 0
    with pytest.raises(MediaError) as err:
        next(frames)
    assert "frame 1's timestamp (0.000 s) does not come after frame 0's (0.000 s)" in str(err.value)
    # a film whose timestamps only ever increase (variable frame rate included) decodes whole
    good = make_clip(tmp_path / "vfr.mkv", "mkv", frames=12, vfr=True)
    assert len(list(iter_frames(good, probe(good)))) == 12


def test_follow_pts_finds_timestamps_that_do_not_increase(tmp_path):
    from colorize.io.decode import follow_pts

    def first_stalled_frame(pts):  # the first frame follow_pts refuses, or None
        last = None
        for i, p in enumerate(pts):
            try:
                last = follow_pts(tmp_path / "f.mp4", last, i, p, None)
            except MediaError:
                return i
        return None

    assert first_stalled_frame([0, 512, 1024, 1536]) is None
    assert first_stalled_frame([None, None, None]) is None  # no timestamps: nothing to keep
    assert first_stalled_frame([0, None, 512, 1024]) is None  # a frame without one is skipped
    assert first_stalled_frame([0, 0, 0]) == 1
    assert first_stalled_frame([0, 512, None, 512]) == 3  # compared with the last frame that had one
    assert first_stalled_frame([0, 512, 1024, 400]) == 3  # a jump back (e.g. two spliced recordings)
