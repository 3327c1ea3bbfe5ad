"""Join the encoded segments of a film into one output by stream copy (no second encode).

Each segment is a video-only file that ``MediaWriter(..., copy_streams=False)`` wrote with the
film's codec and settings; every one starts with a keyframe because it is an encoder of its own.
:class:`PartJoiner` is a :class:`~colorize.io.encode.MediaWriter` whose video stream is a copy of
the first segment's (codec parameters, extradata) instead of an encoder: the packets of every
segment are muxed in order, interleaved with the audio/subtitle/data packets of the input exactly as
a one-piece run muxes them, and the same safety rules hold (temporary file, fsync, rename on
commit, nothing at the final path on any error).

Segments are QuickTime (.mov) files where the codec fits (H.264, HEVC, VP9, AV1, ProRes), else
Matroska (FFV1, intra-only): .mov stores every decode and presentation timestamp exactly (edit lists
restore a segment's start), where NUT and Matroska drop the decode timestamps of a B-frame stream
and NUT shifts a segment that would start with a negative one.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av

from colorize.io.encode import EncodeOptions, MediaWriter
from colorize.io.errors import MediaError, describe_av_error
from colorize.io.probe import MediaInfo
from colorize.io.remux import copy_tags



def part_suffix(options: EncodeOptions) -> str:
    """The container of the segments for ``options.codec``: .mov where it fits, else .mkv."""
    from colorize.io.encode import _codec_id_name
    from colorize.io.remux import supported_codecs

    return ".mov" if _codec_id_name(options.codec) in supported_codecs("mov") else ".mkv"


def _video_stream(container):
    if not container.streams.video:
        raise MediaError("segment has no video stream", Path(container.name))
    return container.streams.video[0]


def part_extradata(path: Path) -> bytes:
    with av.open(str(path)) as c:
        return bytes(_video_stream(c).codec_context.extradata or b"")


class PartJoiner(MediaWriter):
    """``PartJoiner(final, info, parts, options)``: ``add(part)`` for each segment in order, then
    ``commit()`` (or ``abort()``)."""

    def __init__(self, final_path: Path, info: MediaInfo, parts: list[Path],
                 options: EncodeOptions = EncodeOptions()) -> None:
        if not parts:
            raise MediaError("no segments to join", final_path)
        self._parts = [Path(p) for p in parts]
        self._last_dts: int | None = None
        super().__init__(final_path, info, options)

    def _add_video(self, out, codec_id: str, fps: Fraction):
        info = self.info
        try:
            with av.open(str(self._parts[0])) as first:
                template = _video_stream(first)
                vs = out.add_stream_from_template(template)
                tb = template.time_base
                self.pix_fmt = template.codec_context.format.name if template.codec_context.format else None
        except av.FFmpegError as err:
            raise MediaError(f"cannot read segment {self._parts[0].name} ({describe_av_error(err)})",
                             self._parts[0]) from err
        vs.time_base = tb
        self._extradata = part_extradata(self._parts[0])
        if info.rotation:
            vs.set_display_rotation(info.rotation)
        self.sar = Fraction(info.sar) if info.sar else Fraction(1)
        self._sar_graph = None
        copy_tags(info.video_metadata, vs.metadata)
        return vs

    def _flush_video(self) -> None:
        pass  # nothing is encoded here

    def add(self, part: Path) -> int:
        """Mux every video packet of ``part``; returns how many."""
        with self._lock:
            if self._closed:
                raise MediaError("add after commit/abort", self.final_path)
            try:
                return self._add_locked(Path(part))
            except BaseException as err:
                self.abort()
                if isinstance(err, (KeyboardInterrupt, SystemExit, MediaError)):
                    raise
                raise MediaError(f"cannot join segment {Path(part).name} ({describe_av_error(err)})",
                                 self.final_path) from err

    def _add_locked(self, part: Path) -> int:
        if part_extradata(part) != self._extradata:
            raise MediaError(f"segment {part.name} was encoded with other settings than the first",
                             self.final_path)
        n = 0
        with av.open(str(part)) as c:
            stream = _video_stream(c)
            for packet in c.demux(stream):
                if packet.size == 0 and packet.pts is None and packet.dts is None:
                    continue  # the demuxer's end-of-stream marker
                self._monotonic_dts(packet)
                packet.stream = self._video
                self._mux_video(packet)
                self.frames_written += 1
                n += 1
        return n

    def _monotonic_dts(self, packet) -> None:
        """An encoder with B-frames starts each segment's DTS before its first PTS; at a join with a
        variable frame rate that can reach back behind the previous segment's last DTS. Nudge it
        forward (never past the PTS): players and muxers need strictly increasing DTS, and the
        presentation times are untouched."""
        if packet.dts is None or packet.time_base is None:
            return
        dts = packet.dts * packet.time_base
        if self._last_dts is not None and dts <= self._last_dts:
            step = Fraction(1, 1) * packet.time_base
            new = self._last_dts + step
            if packet.pts is not None and new > packet.pts * packet.time_base:
                raise MediaError("segments cannot be joined: decode timestamps overlap", self.final_path)
            packet.dts = int(new / packet.time_base)
            dts = new
        self._last_dts = dts


def join_parts(parts: list[Path], final_path: Path, info: MediaInfo, options: EncodeOptions = EncodeOptions(),
               expected_frames: int | None = None) -> Path:
    """Join ``parts`` (in order) into ``final_path``, copying the input's other streams once.

    Checks that the packets add up to ``expected_frames`` before anything is renamed into place.
    Returns ``final_path``. Raises MediaError (and leaves nothing at ``final_path``) on any error.
    """
    joiner = PartJoiner(final_path, info, parts, options)
    try:
        total = sum(joiner.add(p) for p in parts)
        if expected_frames is not None and total != expected_frames:
            raise MediaError(f"the segments hold {total} frames, {expected_frames} expected", final_path)
        joiner.commit()
    except BaseException:
        joiner.abort()
        raise
    return Path(final_path)
