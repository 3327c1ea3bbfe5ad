"""Stream frames out of a file, one at a time: memory does not grow with the length of the film."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from colorize.io.errors import MediaError, describe_av_error
from colorize.io.probe import MediaInfo, pick_video_stream, stream_duration

# Matrix names that swscale understands, keyed by our colorspace names.
_SWS_MATRIX = {"bt709": "ITU709", "fcc": "FCC", "bt470bg": "ITU601", "smpte170m": "ITU601",
               "smpte240m": "SMPTE240M", "bt2020nc": "ITU2020", "bt2020c": "ITU2020"}


@dataclass
class SourceFrame:
    index: int  # 0-based decode (presentation) order of the video stream
    pts: int | None
    time_base: Fraction | None
    rgb: np.ndarray  # H x W x 3, uint8 (uint16 for > 8-bit sources), full resolution, no rotation
    frame: object  # the decoded av.VideoFrame (None for stills): the writer takes its Y plane
    alpha: np.ndarray | None = None  # stills with transparency only


def yuv_matrix(info_or_colorspace, height: int | None = None) -> str:
    """The Y'CbCr matrix to assume: the tagged one, else BT.709 for HD and BT.601 below."""
    name = info_or_colorspace if isinstance(info_or_colorspace, (str, type(None))) else info_or_colorspace.colorspace
    if height is None and not isinstance(info_or_colorspace, (str, type(None))):
        height = info_or_colorspace.height
    if name in _SWS_MATRIX:
        return name
    return "bt709" if (height or 0) >= 720 else "smpte170m"


def is_full_range(pix_fmt: str, color_range: str | None) -> bool:
    if color_range is not None:
        return color_range == "pc"
    # Untagged: yuvj* and grey/RGB formats are full range by FFmpeg's convention.
    return pix_fmt.startswith(("yuvj", "gray", "rgb", "bgr", "gbr", "ya"))


def frame_to_rgb(frame: av.VideoFrame, info: MediaInfo) -> np.ndarray:
    """Decode-side YUV -> RGB with the source's own matrix and range (not swscale's guess)."""
    fmt = "rgb48le" if info.bit_depth > 8 else "rgb24"
    if frame.format.name in ("rgb24", "rgb48le"):
        return frame.to_ndarray(format=fmt)
    src_range = "JPEG" if is_full_range(frame.format.name, info.color_range) else "MPEG"
    rgb = frame.reformat(
        format=fmt,
        src_colorspace=_SWS_MATRIX[yuv_matrix(info)],
        src_color_range=src_range,
        dst_color_range="JPEG",
        interpolation="BICUBIC",
    )
    return rgb.to_ndarray()


def iter_frames(path: Path, info: MediaInfo) -> Iterator[SourceFrame]:
    """Yield every frame of ``path`` as a :class:`SourceFrame`; a still yields exactly one.

    A generator: the file is decoded as it is consumed. Raises MediaError on corrupt data and,
    at the end, when the stream stops short of what its header promised (a truncated file).
    """
    path = Path(path)
    if info.is_image:
        from colorize.io.images import read_image

        rgb, alpha = read_image(path)
        yield SourceFrame(index=0, pts=None, time_base=None, rgb=rgb, frame=None, alpha=alpha)
        return
    try:
        container = av.open(str(path), metadata_errors="replace")
    except av.FFmpegError as err:
        raise MediaError(f"cannot open ({describe_av_error(err)})", path) from err
    with container:
        stream = container.streams[info.video_index] if info.video_index < len(container.streams) else None
        if stream is None or stream.type != "video":
            stream = pick_video_stream(container)
        stream.thread_type = "AUTO"
        index = 0
        last_time = None
        last = None  # (index, pts) of the last frame with a pts
        try:
            for frame in container.decode(stream):
                if (frame.width, frame.height) != (info.width, info.height):
                    raise MediaError(
                        f"the picture size changes at frame {index} ({info.width}x{info.height} -> "
                        f"{frame.width}x{frame.height}); split the file at that point first",
                        path,
                    )
                tb = Fraction(frame.time_base) if frame.time_base is not None else None
                last = follow_pts(path, last, index, frame.pts, tb)
                if frame.pts is not None and tb is not None:
                    last_time = frame.pts * tb
                yield SourceFrame(index=index, pts=frame.pts, time_base=tb, rgb=frame_to_rgb(frame, info), frame=frame)
                index += 1
        except av.FFmpegError as err:
            raise MediaError(f"corrupt or truncated video at frame {index} ({describe_av_error(err)})", path) from err
        start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        _check_complete(path, info, index, last_time, stream_duration(stream), start)


def follow_pts(path: Path, last: tuple[int, int] | None, index: int, pts: int | None,
               tb: Fraction | None) -> tuple[int, int] | None:
    """``(index, pts)`` of the last frame with a pts once frame ``index`` is decoded (``last``: the
    one before; a frame without a pts leaves it). Raises MediaError when the pts does not come after
    it: decoded frames are in presentation order, so the film's timestamps are broken (some capture
    and conversion tools write every frame at 0), no output can keep them, and a player shows such
    frames at one instant. Both decoders check it, so the planning pass refuses such a film before
    any frame is colourized."""
    if pts is None:
        return last
    if last is not None and pts <= last[1]:
        at = (lambda p: f"{float(p * tb):.3f} s") if tb else (lambda p: f"pts {p}")
        raise MediaError(f"frame {index}'s timestamp ({at(pts)}) does not come after frame {last[0]}'s "
                         f"({at(last[1])}); re-time the film first (at 24 fps: ffmpeg -i IN -vf setpts=N/24/TB "
                         "-c:v ffv1 OUT.mkv)", path)
    return (index, pts)


def _check_complete(path: Path, info: MediaInfo, decoded: int, last_time, duration_s, start: float) -> None:
    """A truncated file decodes "successfully" but stops early: compare with what the header says.

    The frame count alone is not trusted when the stream's duration says otherwise (an edit list
    may hide leading frames), and the duration alone is used only without a count (Matroska).
    """
    if decoded == 0:
        raise MediaError("the video stream has zero frames", path)
    short_time = False
    if duration_s and last_time is not None:
        slack = 3 / float(info.fps or 25) + 0.1
        short_time = float(last_time) - start + slack < duration_s
    if info.frames and decoded < info.frames and (short_time or not duration_s):
        raise MediaError(f"truncated or corrupt: decoded {decoded} of {info.frames} frames", path)
    if info.frames is None and short_time:
        raise MediaError(
            f"truncated or corrupt: video stops at {float(last_time) - start:.2f}s of {duration_s:.2f}s", path
        )



def iter_frame_range(path: Path, info: MediaInfo, start: int, stop: int | None,
                     start_pts: int | None = None) -> Iterator[SourceFrame]:
    """Yield frames ``start`` .. ``stop - 1`` (indices as :func:`iter_frames` numbers them).

    With ``start_pts`` (the pts of frame ``start``, as a planning pass saw it) the demuxer seeks to
    the keyframe at or before it and frames are skipped up to that pts, so a segment deep in a film
    costs one GOP of decoding, not the film up to it; when the seek cannot place the frame (no pts,
    a seek that lands after it) the file is decoded from the start and frames are counted. Pixels
    are converted only for the frames yielded. No truncation check: the planning pass decoded the
    whole file with :func:`iter_frames`.
    """
    path = Path(path)
    if stop is not None and stop <= start:
        return
    frames = None
    if start_pts is not None and start > 0:
        seeked = _seeked(path, info, start, start_pts)
        first = next(seeked, None)
        if first is not None:
            frames = _chain(first, seeked)
    if frames is None:
        frames = _counted(path, info)
    for index, frame in frames:
        if stop is not None and index >= stop:
            return
        if index < start:
            continue
        if (frame.width, frame.height) != (info.width, info.height):
            raise MediaError(f"the picture size changes at frame {index}; split the file at that point first", path)
        tb = Fraction(frame.time_base) if frame.time_base is not None else None
        yield SourceFrame(index=index, pts=frame.pts, time_base=tb, rgb=frame_to_rgb(frame, info), frame=frame)


def _chain(first, rest):
    yield first
    yield from rest


def _open_video(path: Path, info: MediaInfo):
    try:
        container = av.open(str(path), metadata_errors="replace")
    except av.FFmpegError as err:
        raise MediaError(f"cannot open ({describe_av_error(err)})", path) from err
    stream = container.streams[info.video_index] if info.video_index < len(container.streams) else None
    if stream is None or stream.type != "video":
        stream = pick_video_stream(container)
    stream.thread_type = "AUTO"
    return container, stream


def _counted(path: Path, info: MediaInfo):
    """(index, av.VideoFrame) from the first frame on."""
    container, stream = _open_video(path, info)
    with container:
        index = 0
        try:
            for frame in container.decode(stream):
                yield index, frame
                index += 1
        except av.FFmpegError as err:
            raise MediaError(f"corrupt or truncated video at frame {index} ({describe_av_error(err)})", path) from err


def _seeked(path: Path, info: MediaInfo, start: int, start_pts: int):
    """(index, av.VideoFrame) from frame ``start`` (pts ``start_pts``) on, after a seek; nothing
    when the seek does not land at or before that frame."""
    container, stream = _open_video(path, info)
    with container:
        try:
            container.seek(start_pts, stream=stream, backward=True, any_frame=False)
        except av.FFmpegError:
            return
        index = None
        try:
            for frame in container.decode(stream):
                if index is None:
                    if frame.pts is None or frame.pts > start_pts:
                        return
                    if frame.pts < start_pts:
                        continue
                    if frame.pts != start_pts:
                        return  # no frame has that pts: not the planning pass's file
                    index = start
                yield index, frame
                index += 1
        except av.FFmpegError as err:
            raise MediaError(f"corrupt or truncated video at frame {index} ({describe_av_error(err)})", path) from err


def iter_raw_frames(path: Path, info: MediaInfo) -> Iterator[tuple[int, av.VideoFrame]]:
    """``(index, av.VideoFrame)`` for every frame, no pixel conversion (a planning pass that needs
    only the luma plane); the same corrupt/truncated-file and timestamp checks as :func:`iter_frames`."""
    path = Path(path)
    container, stream = _open_video(path, info)
    with container:
        index = 0
        last_time = None
        last = None  # (index, pts) of the last frame with a pts
        try:
            for frame in container.decode(stream):
                if (frame.width, frame.height) != (info.width, info.height):
                    raise MediaError(f"the picture size changes at frame {index} ({info.width}x{info.height} -> "
                                     f"{frame.width}x{frame.height}); split the file at that point first", path)
                tb = Fraction(frame.time_base) if frame.time_base is not None else None
                last = follow_pts(path, last, index, frame.pts, tb)
                if frame.pts is not None and tb is not None:
                    last_time = frame.pts * tb
                yield index, frame
                index += 1
        except av.FFmpegError as err:
            raise MediaError(f"corrupt or truncated video at frame {index} ({describe_av_error(err)})", path) from err
        start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        _check_complete(path, info, index, last_time, stream_duration(stream), start)


def luma_l(frame: av.VideoFrame, info: MediaInfo) -> np.ndarray | None:
    """L (H, W) float32 0..100 straight from an 8-bit Y' plane, as :func:`frame_to_rgb` followed by
    ``colorize.color.merge.l_numpy`` gives it for a grey picture (neutral chroma) to within a level's
    rounding; None for other formats (the caller converts the picture instead)."""
    name = frame.format.name
    if name not in ("yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv440p", "gray",
                    "nv12", "nv21", "yuv411p", "yuv410p"):
        return None
    from colorize.color.merge import _grey_l_lut

    full = is_full_range(name, info.color_range)
    levels = np.arange(256, dtype=np.float32)
    grey = levels if full else np.clip(np.round((levels - 16) * 255 / 219), 0, 255)
    lut = _grey_l_lut(256)[grey.astype(np.intp)]
    plane = frame.planes[0]
    y = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]
    return lut[y]
