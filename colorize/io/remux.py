"""Packet-for-packet copy of the streams we do not touch (audio, subtitles, data), after PyAV's
remux pattern: ``add_stream_from_template`` + mux the demuxed packets; nothing is decoded.

The copier demuxes the input a second time, in step with the encoded video, so the muxer is fed
in timestamp order and memory stays bounded whatever the length of the film.
"""

from __future__ import annotations

import io
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import av

from colorize.io.errors import MediaError, describe_av_error

# Output extension -> FFmpeg muxer.
# Containers we write. Not AVI: it has no per-frame timestamps, and a stream whose time base is not
# the frame rate comes out with the wrong frame count (600 frames for 24) and out-of-order times.
FORMAT_FOR_EXTENSION = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm",
                        ".nut": "nut"}
# Tags the muxer writes itself (copying them would carry stale values).
_GENERATED_TAGS = {"encoder", "major_brand", "minor_version", "compatible_brands", "duration",
                   "number_of_frames", "number_of_bytes", "vendor_id", "_statistics_tags",
                   "_statistics_writing_app", "_statistics_writing_date_utc"}
# Streams the muxer regenerates from tags rather than copies (QuickTime timecode track).
_REGENERATED_DATA = {"tmcd"}


def format_for(path: Path) -> str:
    fmt = FORMAT_FOR_EXTENSION.get(Path(path).suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(FORMAT_FOR_EXTENSION))
        raise MediaError(f"cannot write a video with this extension (use one of {known})", path)
    return fmt


def copy_tags(src: dict[str, str], dst) -> None:
    for key, value in src.items():
        if key.lower() in _GENERATED_TAGS or key.upper().startswith(("DURATION", "NUMBER_OF_", "_STATISTICS")):
            continue
        if key == "name" and "title" not in src:
            key = "title"  # the QuickTime demuxer calls a track's title "name"; muxers take "title"
        try:
            dst[key] = value
        except (ValueError, TypeError):
            pass


def _codec_name(stream) -> str:
    cc = stream.codec_context
    return (cc.name if cc is not None else None) or dict(stream.metadata).get("codec_name") or "unknown"


@lru_cache(maxsize=None)
def supported_codecs(fmt: str) -> frozenset[str]:
    """Codec names the ``fmt`` muxer accepts (asked of FFmpeg, not a hand-kept table)."""
    with av.open(io.BytesIO(), "w", format=fmt) as probe_out:
        return frozenset(probe_out.supported_codecs)


def holding_containers(codec: str) -> list[str]:
    """Extensions of containers that can hold ``codec`` (for the error message)."""
    out = []
    for ext, fmt in (("mkv", "matroska"), ("mov", "mov"), ("mp4", "mp4")):
        if codec in supported_codecs(fmt):
            out.append(ext)
    return out


def _is_chapter_track(stream) -> bool:
    """QuickTime stores chapters as a text track; the muxer rebuilds it from the chapter list, so
    copying it too would duplicate it. Recognised by its sample table alone (no demux pass): one
    sample at the start of every chapter."""
    container = stream.container
    if stream.type not in ("subtitle", "data") or "mov" not in container.format.name:
        return False
    chapters = container.chapters()
    if not chapters:
        return False
    try:
        entries = stream.index_entries
        times = sorted(round(float(e.timestamp * stream.time_base), 3) for e in entries)
    except (AttributeError, TypeError):
        return False
    starts = sorted(round(float(c["start"] * c["time_base"]), 3) for c in chapters)
    return times == starts


def is_copied(stream, video_index: int) -> bool:
    """Every stream but the one we colourize and those the muxer regenerates."""
    if stream.index == video_index:
        return False
    if _is_chapter_track(stream):
        return False
    if stream.type == "data" and _codec_name(stream) in _REGENERATED_DATA:
        return False
    if stream.type == "data" and (stream.codec_context is None or stream.codec_context.name is None):
        tags = {k.lower(): v for k, v in stream.metadata.items()}
        if "timecode" in tags or tags.get("handler_name", "").lower().startswith("timecode"):
            return False  # a tmcd track: rebuilt by the muxer from the video stream's timecode tag
    return True


def check_streams_fit(input_path: Path, video_index: int, out_path: Path) -> None:
    """Raise MediaError if the output container cannot hold one of the streams to be copied."""
    fmt = format_for(out_path)
    allowed = supported_codecs(fmt)
    with av.open(str(input_path), metadata_errors="replace") as inp:
        for s in inp.streams:
            if not is_copied(s, video_index) or s.type == "attachment":
                continue
            codec = _codec_name(s)
            if codec not in allowed:
                where = holding_containers(codec)
                hint = f"; write to .{' or .'.join(where)} instead" if where else ""
                raise MediaError(
                    f"{s.type} stream #{s.index} ({codec}) cannot be stored in {out_path.suffix or fmt}{hint}",
                    input_path,
                )


class StreamCopier:
    """Adds copies of the input's non-video streams to ``output`` and feeds their packets."""

    def __init__(self, input_path: Path) -> None:
        self._path = Path(input_path)
        self._input = av.open(str(input_path), metadata_errors="replace")
        self._map: dict[int, object] = {}
        self._iter = None
        self._held = None  # the packet read ahead of the current video time
        self._done = False
        self.copied = 0

    def add(self, output, index: int):
        """Add to ``output`` a stream copied from input stream ``index`` (codec parameters, time
        base, tags, disposition); returns the new stream."""
        s = self._input.streams[index]
        try:
            out = output.add_stream_from_template(s)
            if s.time_base is not None:
                out.time_base = s.time_base
        except (av.FFmpegError, ValueError, TypeError) as err:
            raise MediaError(
                f"cannot copy {s.type} stream #{s.index} ({_codec_name(s)}): {describe_av_error(err)}", self._path
            ) from err
        copy_tags(dict(s.metadata), out.metadata)
        try:
            out.disposition = s.disposition
        except (AttributeError, TypeError, ValueError):
            pass
        self._map[s.index] = out
        return out

    @property
    def active(self) -> bool:
        return bool(self._map)

    def _next(self):
        if self._held is not None:
            p, self._held = self._held, None
            return p
        if self._done:
            return None
        if self._iter is None:
            streams = [self._input.streams[i] for i in self._map if self._input.streams[i].type != "attachment"]
            if not streams:
                self._done = True
                return None
            self._iter = self._input.demux(*streams)
        try:
            for p in self._iter:
                if p.size == 0 and p.pts is None and p.dts is None:
                    continue  # the demuxer's end-of-stream marker
                return p
        except av.FFmpegError as err:
            raise MediaError(f"corrupt data while copying streams ({describe_av_error(err)})", self._path) from err
        self._done = True
        return None

    def mux_until(self, output, seconds: Fraction | None) -> None:
        """Mux every held packet whose decode time is at or before ``seconds`` (None: all)."""
        while True:
            p = self._next()
            if p is None:
                return
            ts = p.dts if p.dts is not None else p.pts
            if seconds is not None and ts is not None and p.time_base is not None and ts * p.time_base > seconds:
                self._held = p
                return
            out = self._map[p.stream_index]
            if self._regenerated_gap(p, out):
                continue
            p.stream = out
            output.mux(p)
            self.copied += 1

    @staticmethod
    def _regenerated_gap(packet, out) -> bool:
        # The mov/mp4 muxer fills every gap of a mov_text track with an empty sample; copying
        # the input's fillers as well would double them. The muxer writes identical ones back.
        return (
            out.codec_context is not None
            and out.codec_context.name == "mov_text"
            and out.container.format.name in ("mp4", "mov", "ipod")
            and packet.size == 2
            and bytes(packet) == b"\x00\x00"
        )

    def close(self) -> None:
        self._input.close()
