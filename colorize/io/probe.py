"""Probe a video or still image: everything the writer must carry over, in one frozen record.

``probe`` opens the file, checks it holds a decodable video stream by decoding its first frame
(this is what catches "not media", "no video", "zero frames", "unsupported codec" and most
corruption up front, before any model runs), and reads the stream and container tags.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import av

from colorize.io.errors import MediaError, describe_av_error

IMAGE_EXTENSIONS = {".jpg": "mjpeg", ".jpeg": "mjpeg", ".png": "png", ".tif": "tiff", ".tiff": "tiff",
                    ".webp": "webp", ".bmp": "bmp"}
_IMAGE_FORMATS = {"png_pipe", "jpeg_pipe", "tiff_pipe", "webp_pipe", "image2", "jpegls_pipe", "bmp_pipe"}
# FFmpeg demuxers that accept almost any file and would "play" a text file as video.
_NOT_MEDIA_FORMATS = {"tty", "lavfi", "bin", "xbin", "idf", "adf", "txt"}

# FFmpeg enum values -> names (as ffprobe writes them); None = unspecified.
COLORSPACES = {0: "gbr", 1: "bt709", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m",
               8: "ycgco", 9: "bt2020nc", 10: "bt2020c", 14: "ictcp"}
PRIMARIES = {1: "bt709", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "film",
             9: "bt2020", 10: "smpte428", 11: "smpte431", 12: "smpte432", 22: "ebu3213"}
TRANSFERS = {1: "bt709", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m", 8: "linear",
             9: "log100", 10: "log316", 11: "iec61966-2-4", 12: "bt1361e", 13: "iec61966-2-1",
             14: "bt2020-10", 15: "bt2020-12", 16: "smpte2084", 17: "smpte428", 18: "arib-std-b67"}
RANGES = {1: "tv", 2: "pc"}
FIELD_ORDERS = {1: "progressive", 2: "tt", 3: "bb", 4: "tb", 5: "bt"}  # first letter: field coded first


def enum_value(table: dict[int, str], name: str | None) -> int:
    """Inverse of the tables above; 2 (unspecified) for None, 0 for an unspecified range."""
    if name is None:
        return 0 if table is RANGES else 2
    return {v: k for k, v in table.items()}[name]


@dataclass(frozen=True)
class StreamInfo:
    index: int
    kind: str  # "video" / "audio" / "subtitle" / "data" / "attachment"
    codec: str | None
    language: str | None = None
    title: str | None = None


@dataclass(frozen=True)
class MediaInfo:
    path: Path
    is_image: bool
    container: str
    width: int
    height: int
    sar: Fraction
    fps: Fraction | None
    time_base: Fraction | None
    frames: int | None
    duration_s: float | None
    pix_fmt: str
    bit_depth: int
    codec: str
    color_range: str | None
    color_primaries: str | None
    color_trc: str | None
    colorspace: str | None
    rotation: int
    streams: tuple[StreamInfo, ...]
    metadata: dict[str, str] = field(hash=False)
    video_index: int = 0  # index of the stream that gets colourized
    video_metadata: dict[str, str] = field(default_factory=dict, hash=False)  # its stream tags
    field_order: str | None = None  # "progressive", "tt", "bb", "tb", "bt" (FFmpeg's names) or unknown

    @property
    def interlaced(self) -> bool:
        return self.field_order in ("tt", "bb", "tb", "bt")

    @property
    def frame_estimate(self) -> int | None:
        """Frame count from the header, else from duration x fps (for progress bars only)."""
        if self.frames:
            return self.frames
        if self.duration_s and self.fps:
            return max(1, round(self.duration_s * float(self.fps)))
        return 1 if self.is_image else None

    def as_dict(self) -> dict:
        d = asdict(self)
        for key in ("sar", "fps", "time_base"):
            v = d[key]
            d[key] = None if v is None else f"{v.numerator}/{v.denominator}"
        d["path"] = str(self.path)
        return d


def _bit_depth(pix_fmt: str) -> int:
    try:
        return max(c.bits for c in av.VideoFormat(pix_fmt).components)
    except (ValueError, TypeError):
        return 8


def _frames_from_tags(tags: dict[str, str]) -> int | None:
    for key, value in tags.items():
        if key.upper().startswith("NUMBER_OF_FRAMES"):
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _duration_from_tags(tags: dict[str, str]) -> float | None:
    for key, value in tags.items():
        if key.upper() == "DURATION":  # Matroska "HH:MM:SS.nnnnnnnnn"
            try:
                h, m, s = value.split(":")
                return int(h) * 3600 + int(m) * 60 + float(s)
            except ValueError:
                return None
    return None


def stream_duration(stream) -> float | None:
    """The stream's own duration in seconds, when the file states it."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return _duration_from_tags(dict(stream.metadata))


def video_duration(stream, container) -> float | None:
    """The video stream's duration, else the container's (which may include longer audio)."""
    own = stream_duration(stream)
    if own is not None:
        return own
    if container.duration is not None:
        return container.duration / 1_000_000
    return None


def _stream_info(stream) -> StreamInfo:
    tags = dict(stream.metadata)
    cc = stream.codec_context
    codec = cc.name if cc is not None else None
    if codec is None:
        codec = tags.get("codec_name")
    return StreamInfo(
        index=stream.index,
        kind=stream.type,
        codec=codec,
        language=tags.get("language"),
        title=tags.get("title") or tags.get("name"),
    )


def pick_video_stream(container):
    """The picture to colourize: the first video stream that is not cover art."""
    for s in container.streams.video:
        if not (s.disposition & av.stream.Disposition.attached_pic):
            return s
    return None


def _check_file(path: Path) -> None:
    if not path.exists():
        raise MediaError("no such file", path)
    if path.is_dir():
        raise MediaError("is a folder, not a file", path)
    try:
        size = path.stat().st_size
        with open(path, "rb"):
            pass
    except OSError as err:
        raise MediaError(f"cannot read the file ({err.strerror})", path) from err
    if size == 0:
        raise MediaError("empty file (0 bytes)", path)


def probe(path: Path | str) -> MediaInfo:
    """Describe ``path``; raise :class:`MediaError` with a one-line reason if it is unusable."""
    path = Path(path)
    _check_file(path)
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        from colorize.io.images import probe_image

        return probe_image(path)
    try:
        container = av.open(str(path), metadata_errors="replace")
    except (av.FFmpegError, UnicodeDecodeError) as err:
        raise MediaError(f"not a media file, or corrupt/truncated ({describe_av_error(err)})", path) from err
    with container:
        fmt = container.format.name
        if fmt in _NOT_MEDIA_FORMATS:
            raise MediaError("not a media file", path)
        if fmt in _IMAGE_FORMATS:
            from colorize.io.images import probe_image

            return probe_image(path)
        return _probe_video(path, container)


def _probe_video(path: Path, container) -> MediaInfo:
    stream = pick_video_stream(container)
    if stream is None:
        kinds = sorted({s.type for s in container.streams if s not in container.streams.video})
        what = " and ".join(kinds) + " only" if kinds else "no streams"
        if container.streams.video:
            what += "; its picture is cover art, not a film"
        raise MediaError(f"no video stream ({what})", path)
    cc = stream.codec_context
    if cc is None or cc.codec is None or not cc.codec.is_decoder:
        tags = dict(stream.metadata)
        name = (cc.name if cc is not None else None) or tags.get("codec_name") or "unknown"
        raise MediaError(f"unsupported video codec '{name}' (no decoder in this FFmpeg build)", path)

    first = None
    try:
        for packet in container.demux(stream):
            for frame in packet.decode():
                first = frame
                break
            if first is not None:
                break
    except av.FFmpegError as err:
        raise MediaError(f"corrupt video ({describe_av_error(err)})", path) from err
    if first is None:
        raise MediaError("the video stream has zero frames", path)

    tags = dict(stream.metadata)
    pix_fmt = first.format.name
    frames = stream.frames or _frames_from_tags(tags) or None
    fps = stream.average_rate or stream.guessed_rate or None
    # The container's ratio first (Matroska DisplayWidth/Height, mp4 'pasp'), as FFmpeg decides it:
    # FFV1 keeps it only in the container, where the codec parameters never see it.
    sar = stream.sample_aspect_ratio or cc.sample_aspect_ratio or Fraction(1, 1)
    container_tags = dict(container.metadata)
    return MediaInfo(
        path=path,
        is_image=False,
        container=container.format.name,
        width=first.width,
        height=first.height,
        sar=Fraction(sar),
        fps=None if fps is None else Fraction(fps),
        time_base=None if stream.time_base is None else Fraction(stream.time_base),
        frames=frames,
        duration_s=video_duration(stream, container),
        pix_fmt=pix_fmt,
        bit_depth=_bit_depth(pix_fmt),
        codec=cc.name,
        color_range=RANGES.get(int(first.color_range)),
        color_primaries=PRIMARIES.get(int(first.color_primaries)),
        color_trc=TRANSFERS.get(int(first.color_trc)),
        colorspace=COLORSPACES.get(int(first.colorspace)) if pix_fmt[:3] not in ("rgb", "bgr", "gbr") else "gbr",
        rotation=int(round(first.rotation or 0)),
        streams=tuple(_stream_info(s) for s in container.streams),
        metadata=container_tags,
        video_index=stream.index,
        video_metadata=tags,
        field_order=_field_order(cc.field_order, first),
    )


def _field_order(code, first) -> str | None:
    name = FIELD_ORDERS.get(int(code or 0))
    if name is None and first.interlaced_frame:
        return "tt"  # flagged interlaced without an order: top field first is the common case
    return name
