"""Generators for small test media, made with PyAV inside the tests (no third-party footage).

``make_clip`` writes a short clip with the features an archivist's file has: VFR timestamps,
non-square pixels, colour tags, several audio tracks, a subtitle track, a title and a creation time.
The picture is grey (a black-and-white film: U = V = mid-grey) with sharp edges and flat regions.
``read_packets`` / ``read_video`` read a file back for comparisons.
"""

from __future__ import annotations

import math
import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

CREATION_TIME = "2021-03-04T05:06:07.000000Z"

# Per-container choices that the container can hold.
_SUBTITLE_CODEC = {"mp4": "mov_text", "mov": "mov_text", "mkv": "subrip"}
_FORMAT = {"mp4": "mp4", "mov": "mov", "mkv": "matroska"}


def frame_durations(frames: int, vfr: bool) -> list[int]:
    """Frame durations in milliseconds: constant 40 ms (25 fps), or irregular for VFR."""
    if not vfr:
        return [40] * frames
    pattern = [33, 50, 41, 67, 40, 20]
    return [pattern[i % len(pattern)] for i in range(frames)]


def luma_pattern(index: int, width: int, height: int, high: int = 255) -> np.ndarray:
    """A grey test picture: flat bands plus a moving sharp-edged square and fine texture."""
    y, x = np.mgrid[0:height, 0:width]
    img = np.where(x < width // 2, 0.25, 0.7) + 0.05 * (y * 4 // max(height, 1))
    s = max(4, min(width, height) // 4)
    x0 = (index * 3) % max(1, width - s)
    y0 = height // 3
    img = np.where((x >= x0) & (x < x0 + s) & (y >= y0) & (y < y0 + s), 0.95, img)
    img = img + 0.02 * np.sin(x * 0.9 + index) * (y > height * 3 // 4)
    lo, hi = (16, 235) if high == 255 else (64, 940)
    return np.clip(lo + img * (hi - lo), 0, high).round().astype(np.uint16 if high > 255 else np.uint8)


def fill_frame(frame: av.VideoFrame, y_plane: np.ndarray, mid: int) -> None:
    """Write a Y plane and neutral chroma into a planar YUV frame, honouring line strides."""
    itemsize = y_plane.dtype.itemsize
    for i, plane in enumerate(frame.planes):
        h = plane.height
        w = plane.width
        view = np.frombuffer(plane, dtype=y_plane.dtype).reshape(h, plane.line_size // itemsize)
        view[:, :w] = y_plane if i == 0 else mid


def _subtitle_payload(codec: str, text: str) -> bytes:
    if codec == "ass":  # Matroska's ASS block: ReadOrder,Layer,Style,Name,MarginL,MarginR,MarginV,Effect,Text
        text = f"0,0,Default,,0,0,0,,{text}"
    data = text.encode("utf-8")
    return struct.pack(">H", len(data)) + data if codec == "mov_text" else data


def make_clip(
    path: Path,
    container: str = "mp4",
    size: tuple[int, int] = (66, 38),
    frames: int = 12,
    vfr: bool = False,
    sar: Fraction | None = None,
    audio_tracks: int = 0,
    subtitles: bool = False,
    title: str | None = None,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    creation_time: str | None = CREATION_TIME,
    colorspace: int = 1,
    color_range: int = 1,
    audio_codec: str = "aac",
    faststart: bool = False,
    timecode: str | None = None,
    chapters: int = 0,
    subtitle_codec: str | None = None,
    attachment: bytes | None = None,
    grain: float = 0.0,
    interlaced: bool = False,
    rotation: int = 0,
) -> Path:
    """Write a test clip and return its path.

    size is (width, height). Colour tags default to BT.709 limited range. Timestamps are in
    milliseconds (time base 1/1000) so they survive every container exactly.
    """
    path = Path(path)
    if sar is not None and codec == "ffv1":
        # FFV1 takes the ratio from each frame and Matroska from AVStream, neither of which PyAV
        # sets: the clip would silently have square pixels (colorize's writer works around both).
        raise ValueError("make_clip cannot give an FFV1 clip a pixel aspect ratio")
    high = 1023 if "10" in pix_fmt else 255
    mid = 512 if high > 255 else 128
    durations = frame_durations(frames, vfr)
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", format=_FORMAT[container], options=options) as out:
        if title is not None:
            out.metadata["title"] = title
        if creation_time is not None:
            out.metadata["creation_time"] = creation_time
        if timecode is not None:
            out.metadata["timecode"] = timecode
        if chapters:
            span = sum(durations) // chapters
            out.set_chapters([
                {"id": k + 1, "start": k * span, "end": (k + 1) * span, "time_base": Fraction(1, 1000),
                 "metadata": {"title": f"Reel {k + 1}"}}
                for k in range(chapters)
            ])
        if attachment is not None:
            out.add_attachment("ArchiveSans.ttf", "font/ttf", attachment)
        video = out.add_stream(codec, rate=25)
        video.width, video.height = size
        video.pix_fmt = pix_fmt
        video.time_base = Fraction(1, 1000)
        if timecode is not None:
            video.metadata["timecode"] = timecode
        cc = video.codec_context
        cc.time_base = Fraction(1, 1000)
        cc.color_primaries = colorspace
        cc.color_trc = colorspace
        cc.colorspace = colorspace
        cc.color_range = color_range
        if sar is not None:
            cc.sample_aspect_ratio = sar
        if rotation:  # a phone clip: stored landscape, displayed turned
            video.set_display_rotation(rotation)
        if codec == "libx264":
            video.options = {"crf": "23", "preset": "ultrafast", "bf": "2"}
            if interlaced:  # top field first, coded as fields (a PAL/NTSC telecine transfer)
                video.options = {**video.options, "flags": "+ildct+ilme", "x264-params": "tff=1"}
        if interlaced:
            cc.field_order = 2
        audio = []
        for i in range(audio_tracks):
            a = out.add_stream(audio_codec, rate=48000)
            a.layout = "stereo" if i == 0 else "mono"
            a.metadata["language"] = ("eng", "fra")[i % 2]
            a.metadata["title"] = f"track {i}"
            audio.append(a)
        sub = None
        sub_codec = subtitle_codec or _SUBTITLE_CODEC[container]
        if subtitles:
            sub = out.add_mux_stream(sub_codec)
            sub.time_base = Fraction(1, 1000)
            sub.metadata["language"] = "eng"

        t_ms = 0
        for i in range(frames):
            f = av.VideoFrame(size[0], size[1], pix_fmt)
            y_plane = luma_pattern(i, size[0], size[1], high)
            if grain:  # film grain: what makes real scans expensive to encode
                noise = np.random.default_rng(i).normal(0.0, grain * (high + 1) / 256, y_plane.shape)
                y_plane = np.clip(y_plane + noise, 0, high).astype(y_plane.dtype)
            fill_frame(f, y_plane, mid)
            f.pts = t_ms
            f.time_base = Fraction(1, 1000)
            t_ms += durations[i]
            for p in video.encode(f):
                out.mux(p)
        for p in video.encode(None):
            out.mux(p)

        total_s = t_ms / 1000
        for k, a in enumerate(audio):
            layout = a.layout.name
            channels = a.layout.nb_channels
            fs = a.frame_size or 1024
            n_total = int(total_s * 48000)
            pts = 0
            while pts < n_total:
                t = (np.arange(pts, pts + fs) / 48000.0)[None, :]
                wave = (0.3 * np.sin(2 * math.pi * (440 + 220 * k) * t)).astype(np.float32)
                data = np.repeat(wave, channels, axis=0)
                fmt = a.format.name
                if fmt == "fltp":
                    af = av.AudioFrame.from_ndarray(data, format="fltp", layout=layout)
                elif fmt == "s16":
                    af = av.AudioFrame.from_ndarray(
                        (data.T.reshape(1, -1) * 32767).astype(np.int16), format="s16", layout=layout
                    )
                else:  # s16p, flt, ...
                    af = av.AudioFrame.from_ndarray(data, format="fltp", layout=layout)
                af.sample_rate = 48000
                af.pts = pts
                af.time_base = Fraction(1, 48000)
                pts += fs
                for p in a.encode(af):
                    out.mux(p)
            for p in a.encode(None):
                out.mux(p)
        if sub is not None:
            for j, start in enumerate(range(0, t_ms, 200)):
                pkt = av.Packet(_subtitle_payload(sub_codec, f"line {j}"))
                pkt.pts = pkt.dts = start
                pkt.duration = 150
                pkt.time_base = Fraction(1, 1000)
                pkt.stream = sub
                out.mux(pkt)
    return path


def read_packets(path: Path, kind: str) -> list[list[tuple[Fraction | None, bytes]]]:
    """Per stream of ``kind``: the list of (pts in seconds, payload bytes) in demux order."""
    with av.open(str(path)) as c:
        streams = [s for s in c.streams if s.type == kind]
        out: dict[int, list] = {s.index: [] for s in streams}
        for p in c.demux(*streams):
            if p.size == 0:
                continue
            t = None if p.pts is None else p.pts * p.time_base
            out[p.stream.index].append((t, bytes(p)))
        return [out[s.index] for s in streams]


def read_video(path: Path) -> tuple[list[Fraction], list[np.ndarray], av.VideoFrame | None]:
    """Decode every video frame: (pts in seconds, Y plane) and the last frame for its tags."""
    times, planes, last = [], [], None
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        for f in c.decode(stream):
            times.append(f.pts * f.time_base)
            p = f.planes[0]
            dtype = np.uint16 if p.line_size >= 2 * f.width and "p10" in f.format.name else np.uint8
            itemsize = np.dtype(dtype).itemsize
            y = np.frombuffer(p, dtype=dtype).reshape(p.height, p.line_size // itemsize)[:, : f.width]
            planes.append(y.copy())
            last = f
    return times, planes, last


def _write_silent_aac(out) -> None:
    """Add a mono AAC track to ``out`` and write 10 frames of silence into it."""
    a = out.add_stream("aac", rate=48000)
    a.layout = "mono"
    for i in range(10):
        af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        af.sample_rate, af.pts, af.time_base = 48000, i * 1024, Fraction(1, 48000)
        for p in a.encode(af):
            out.mux(p)
    for p in a.encode(None):
        out.mux(p)


def make_audio_only(path: Path, cover: bytes | None = None) -> Path:
    """A Matroska file with one AAC track and no video (``cover``: JPEG cover art attached)."""
    with av.open(str(path), "w", format="matroska") as out:
        if cover is not None:
            out.add_attachment("cover.jpg", "image/jpeg", cover)
        _write_silent_aac(out)
    return Path(path)


def make_zero_frames(path: Path) -> Path:
    """A Matroska file that declares a video stream but holds no video frame (audio only)."""
    with av.open(str(path), "w", format="matroska") as out:
        v = out.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        _write_silent_aac(out)
    return Path(path)


def make_stalled_timestamps(path: Path) -> Path:
    """A well-formed MP4 whose frames all carry timestamp 0 (as some capture and conversion tools
    write them): it decodes, but no output can keep its timestamps."""
    src = make_clip(Path(path).with_name("stalled_src.mkv"), "mkv", frames=8)
    with av.open(str(src)) as c, av.open(str(path), "w") as out:
        vs = out.add_stream_from_template(c.streams.video[0])
        for packet in c.demux(video=0):
            if packet.size == 0:
                continue
            packet.pts = packet.dts = 0
            packet.stream = vs
            out.mux(packet)
    src.unlink()
    with av.open(str(path)) as c:  # (the container keeps them as written)
        assert {(p.pts, p.dts) for p in c.demux(video=0) if p.size} == {(0, 0)}
    return Path(path)


def make_unknown_codec(path: Path) -> Path:
    """A Matroska clip whose video CodecID is one no FFmpeg build can decode."""
    make_clip(path, "mkv", frames=3)
    data = Path(path).read_bytes()
    assert data.count(b"V_MPEG4/ISO/AVC") == 1
    Path(path).write_bytes(data.replace(b"V_MPEG4/ISO/AVC", b"V_XYZZY/ISO/AVC"))
    return Path(path)
