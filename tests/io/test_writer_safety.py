"""The writer never leaves a partial file, never half-overwrites an output, never touches the input."""

from __future__ import annotations

import errno
import io
import os

import numpy as np
import pytest

import colorize.io.encode as encode
from colorize.io import EncodeOptions, MediaError, MediaWriter, iter_frames, probe
from tests.media import make_clip


def _ab(info):
    return np.full((info.height, info.width, 2), 10.0, np.float32)


@pytest.fixture()
def film(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    return make_clip(folder / "reel.mkv", "mkv", frames=6, audio_tracks=1, subtitles=True)


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if ".partial-" in p.name)


def test_temporary_file_is_in_the_output_folder_never_beside_the_input(film, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    before = sorted(os.listdir(film.parent))
    info = probe(film)
    writer = MediaWriter(out_dir / "reel_colorized.mkv", info, EncodeOptions())
    assert writer.temp_path.parent == out_dir and writer.temp_path.exists()
    assert writer.temp_path.name.startswith(".reel_colorized.partial-")
    for src in iter_frames(film, info):
        writer.write(src, _ab(info))
        assert sorted(os.listdir(film.parent)) == before
    assert not (out_dir / "reel_colorized.mkv").exists()  # nothing final before commit
    writer.commit()
    assert sorted(os.listdir(film.parent)) == before
    assert sorted(os.listdir(out_dir)) == ["reel_colorized.mkv"]
    assert probe(out_dir / "reel_colorized.mkv").frame_estimate == 6


def test_abort_removes_the_temporary_file(film, tmp_path):
    info = probe(film)
    writer = MediaWriter(tmp_path / "o.mkv", info)
    src = next(iter_frames(film, info))
    writer.write(src, _ab(info))
    writer.abort()
    assert not writer.temp_path.exists() and not (tmp_path / "o.mkv").exists()
    writer.abort()  # twice is harmless
    with pytest.raises(MediaError):
        writer.write(src, _ab(info))


@pytest.mark.parametrize("exc", [RuntimeError("model crashed"), KeyboardInterrupt()])
def test_exception_inside_with_removes_the_temporary_file(film, tmp_path, exc):
    info = probe(film)
    final = tmp_path / "o.mkv"
    final.write_bytes(b"previous good output")
    with pytest.raises(type(exc)):
        with MediaWriter(final, info) as writer:
            for i, src in enumerate(iter_frames(film, info)):
                writer.write(src, _ab(info))
                if i == 2:
                    raise exc
    assert not writer.temp_path.exists()
    assert final.read_bytes() == b"previous good output"  # never half-overwritten
    assert _leftovers(tmp_path) == []


def test_commit_replaces_an_existing_output_atomically(film, tmp_path):
    info = probe(film)
    final = tmp_path / "o.mkv"
    final.write_bytes(b"old")
    with MediaWriter(final, info) as writer:
        for src in iter_frames(film, info):
            writer.write(src, _ab(info))
    assert final.read_bytes() != b"old" and probe(final).width == info.width
    assert _leftovers(tmp_path) == []


class _FullDisk(io.FileIO):
    """A file on a disk that fills up after ``room`` bytes."""

    room = 3000

    def write(self, data):
        if self.tell() + len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(data)


def _full_disk_open(path):
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
    os.close(fd)
    return _FullDisk(path, "r+")


def test_disk_full_leaves_nothing(film, tmp_path, monkeypatch):
    monkeypatch.setattr(encode, "_open_temp", _full_disk_open)
    info = probe(film)
    final = tmp_path / "o.mkv"
    with pytest.raises(MediaError, match="disk full"):
        with MediaWriter(final, info) as writer:
            for src in iter_frames(film, info):
                writer.write(src, _ab(info))
    assert not final.exists() and _leftovers(tmp_path) == []


def test_disk_full_on_a_still(tmp_path, monkeypatch):
    import cv2

    cv2.imwrite(str(tmp_path / "p.png"), np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8))
    monkeypatch.setattr(encode, "_open_temp", _full_disk_open)
    info = probe(tmp_path / "p.png")
    with pytest.raises(MediaError, match="disk full"):
        with MediaWriter(tmp_path / "p_colorized.png", info) as writer:
            writer.write(next(iter_frames(info.path, info)), np.zeros((64, 64, 2), np.float32))
    assert sorted(os.listdir(tmp_path)) == ["p.png"]


def test_output_equal_to_input_is_refused(film):
    with pytest.raises(MediaError, match="overwrite the input"):
        MediaWriter(film, probe(film))
    with pytest.raises(MediaError, match="overwrite the input"):
        MediaWriter(film.parent / "." / film.name, probe(film))


def test_missing_or_unwritable_output_folder(film, tmp_path):
    with pytest.raises(MediaError, match="does not exist"):
        MediaWriter(tmp_path / "nowhere" / "o.mkv", probe(film))
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        with pytest.raises(MediaError, match="cannot write"):
            MediaWriter(locked / "o.mkv", probe(film))
    finally:
        locked.chmod(0o700)


def test_container_that_cannot_hold_a_stream_is_named(tmp_path):
    src = make_clip(tmp_path / "s.mp4", "mp4", frames=3, subtitles=True)  # mov_text subtitles
    with pytest.raises(MediaError) as err:
        MediaWriter(tmp_path / "s.mkv", probe(src), EncodeOptions(codec="ffv1"))
    message = str(err.value)
    assert "subtitle stream #1 (mov_text)" in message and ".mov" in message
    assert _leftovers(tmp_path) == []


def test_no_frames_written_is_an_error(film, tmp_path):
    writer = MediaWriter(tmp_path / "o.mkv", probe(film))
    with pytest.raises(MediaError, match="no frames"):
        writer.commit()
    assert not (tmp_path / "o.mkv").exists() and _leftovers(tmp_path) == []


def test_wrong_ab_shape_is_a_value_error(film, tmp_path):
    info = probe(film)
    writer = MediaWriter(tmp_path / "o.mkv", info)
    with pytest.raises(ValueError):
        writer.write(next(iter_frames(film, info)), np.zeros((4, 4, 2), np.float32))
    assert not writer.temp_path.exists()


def test_iter_frames_is_a_generator_with_flat_memory(tmp_path):
    import inspect
    import tracemalloc

    assert inspect.isgeneratorfunction(iter_frames)
    peaks = []
    for frames in (8, 48):
        path = make_clip(tmp_path / f"m{frames}.mkv", "mkv", size=(160, 120), frames=frames)
        info = probe(path)
        tracemalloc.start()
        count = sum(1 for _ in iter_frames(path, info))
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert count == frames
    assert peaks[1] < 1.5 * peaks[0] + 200_000, peaks  # six times the frames, not six times the memory


def test_abort_from_another_thread_while_writing(film, tmp_path):
    """Ctrl-C lands in the main thread while an encoder thread writes: abort waits, then cleans up."""
    import threading

    long_film = make_clip(tmp_path / "long.mkv", "mkv", frames=40, audio_tracks=1)
    info = probe(long_film)
    frames = iter_frames(long_film, info)
    writer = MediaWriter(tmp_path / "o.mkv", info)
    started, errors = threading.Event(), []

    def encode():
        try:
            for src in frames:
                writer.write(src, _ab(info))
                started.set()
        except MediaError as err:
            errors.append(str(err))
        finally:
            started.set()

    worker = threading.Thread(target=encode)
    worker.start()
    started.wait(10)
    writer.abort()
    worker.join(10)
    assert not worker.is_alive()
    assert not writer.temp_path.exists() and not (tmp_path / "o.mkv").exists()
    assert errors == [] or "after commit/abort" in errors[0]
