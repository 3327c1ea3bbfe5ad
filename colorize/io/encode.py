"""Write the colourized result: video (re-encoded picture + copied audio/subtitles) or a still.

Safety rules, because a failed run must never cost an archivist a file:
* everything goes to a temporary file in the output folder (``.<stem>.partial-XXXXXXXX<ext>``);
  only :meth:`MediaWriter.commit` renames it onto the final name, atomically, after fsync;
* :meth:`MediaWriter.abort` (and any exception, Ctrl-C included, under ``with``) deletes it;
* the input is never opened for writing, and the output may not be the input.

Luma guarantee: the output's Y' plane is the source frame's Y' plane; only Cb/Cr are computed
from L(src) + ab (see :mod:`colorize.color.merge`).
"""

from __future__ import annotations

import errno
import os
import secrets
import threading
import weakref
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from colorize.color.merge import chroma_planes, l_numpy, luma_plane, merge_rgb, quantize_rgb
from colorize.io.decode import SourceFrame, is_full_range, yuv_matrix
from colorize.io.errors import MediaError, describe_av_error
from colorize.io.matroska import restore, write_display_aspect
from colorize.io.probe import COLORSPACES, FIELD_ORDERS, PRIMARIES, RANGES, TRANSFERS, MediaInfo, enum_value
from colorize.io.remux import StreamCopier, check_streams_fit, copy_tags, format_for, is_copied, supported_codecs
from colorize.io.x264 import deterministic_params, join_params

_KEEP_CONTAINER = {".mp4": ".mp4", ".m4v": ".mp4", ".mov": ".mov", ".mkv": ".mkv"}
_DEPTH_SUFFIX = {8: "", 9: "9le", 10: "10le", 12: "12le", 14: "14le", 16: "16le"}


@dataclass(frozen=True)
class EncodeOptions:
    codec: str = "libx264"
    crf: int = 17
    preset: str = "medium"
    pix_fmt: str | None = None  # None = keep the input's where the codec allows
    image_quality: int = 95  # jpg/webp stills
    tune: str | None = None  # x264/x265 --tune, e.g. "grain" for film scans


# ------------------------------------------------------------------------------- naming
def _codec_id_name(codec: str) -> str:
    """The codec an encoder writes ("libx264" -> "h264")."""
    try:
        return av.Codec(codec, "w").canonical_name
    except Exception as err:  # av raises several types for unknown names
        raise MediaError(f"unknown or unavailable video encoder '{codec}'") from err


def _fits(ext: str, codec: str | None, stream_codecs: list[str]) -> bool:
    allowed = supported_codecs(format_for(Path("x" + ext)))
    need = list(stream_codecs) + ([_codec_id_name(codec)] if codec else [])
    return all(c in allowed for c in need)


def output_path_for(input: Path, info: MediaInfo, output: Path | None = None, codec: str | None = None) -> Path:
    """Default output name ``<stem>_colorized.<ext>``: beside the input, or inside ``output`` when
    that is a folder, or ``output`` itself. The container is kept where it can hold the codec and
    every copied stream (mp4->mp4, mkv->mkv, mov->mov, others->mkv; ffv1 -> mkv), else the first of
    mkv/mov/mp4 that can. Stills keep their format."""
    input = Path(input)
    if info.is_image:
        ext = input.suffix
    else:
        codec = codec or EncodeOptions.codec
        preferred = ".mkv" if _codec_id_name(codec) == "ffv1" else _KEEP_CONTAINER.get(input.suffix.lower(), ".mkv")
        copied = [s.codec for s in info.streams if s.index != info.video_index and s.kind in ("audio", "subtitle") and s.codec]
        ext = next((e for e in (preferred, ".mkv", ".mov", ".mp4") if _fits(e, codec, copied)), preferred)
    name = f"{input.stem}_colorized{ext}"
    if output is None:
        return input.with_name(name)
    output = Path(output)
    if output.is_dir() or str(output).endswith(("/", os.sep)):
        return output / name
    return output


# ------------------------------------------------------------------------------- pixel formats
def _depth_of(pix_fmt: str) -> int:
    return max(c.bits for c in av.VideoFormat(pix_fmt).components)


def choose_pix_fmt(src_fmt: str, codec: str, requested: str | None) -> str:
    """A planar Y'CbCr format the encoder accepts: the source's own when possible (so its Y'
    plane can be copied bit for bit), else the same depth and subsampling, else 8-bit 4:2:0."""
    allowed = [f.name for f in (av.Codec(codec, "w").video_formats or [])]
    if requested:
        if allowed and requested not in allowed:
            raise MediaError(f"the {codec} encoder cannot write pixel format {requested}")
        return requested
    if src_fmt.startswith("yuv") and not src_fmt.startswith("yuva") and src_fmt in allowed:
        return src_fmt
    depth = _depth_of(src_fmt)
    if src_fmt.startswith(("yuv", "yuva")):
        sub = src_fmt[src_fmt.index("yuv") + (4 if src_fmt.startswith("yuva") else 3):][:3]
    elif src_fmt.startswith(("nv12", "nv21", "p010", "p016", "gray")):
        sub = "420"
    else:  # RGB sources: keep full chroma resolution where the codec allows
        sub = "444"
    for d in sorted({depth, 10, 8}, key=lambda x: (x > depth, -x)):
        cand = f"yuv{sub}p{_DEPTH_SUFFIX.get(d, '')}"
        if cand in allowed:
            return cand
    for cand in ("yuv420p", "yuv444p"):
        if not allowed or cand in allowed:
            return cand
    raise MediaError(f"the {codec} encoder takes no planar Y'CbCr format")


def _codec_options(
    codec_id: str, options: EncodeOptions, width: int, height: int, field_order: str | None = None
) -> dict[str, str]:
    interlaced = field_order in ("tt", "bb", "tb", "bt")
    if codec_id == "h264":
        out = {"crf": str(options.crf), "preset": options.preset}
        if options.tune:
            out["tune"] = options.tune
        fields = None
        if interlaced:  # code the fields as fields, in the source's order
            out["flags"] = "+ildct+ilme"
            fields = "tff=1" if field_order in ("tt", "tb") else "bff=1"
        params = join_params(fields, deterministic_params())  # same input -> same file: see x264.py
        if params:
            out["x264-params"] = params
        return out
    if codec_id == "hevc":
        out = {"crf": str(options.crf), "preset": options.preset}
        if options.tune:
            out["tune"] = options.tune
        return out
    if codec_id in ("vp9", "av1"):
        return {"crf": str(options.crf), "b": "0"}
    if codec_id == "ffv1":
        # The archival profile: version 3, intra-only, per-slice CRCs (detects bit rot).
        slices = "4" if width >= 64 and height >= 64 else "1"
        return {"level": "3", "g": "1", "slicecrc": "1", "slices": slices}
    return {}


def _plane_view(plane, dtype) -> np.ndarray:
    item = np.dtype(dtype).itemsize
    return np.frombuffer(plane, dtype=dtype).reshape(plane.height, plane.line_size // item)[:, : plane.width]


def _open_temp(path: Path):
    """Create the temporary output exclusively (never clobbers anything) and open it for writing."""
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
    return os.fdopen(fd, "r+b")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError:
        pass


def _write_error(err: BaseException, final: Path) -> MediaError:
    if isinstance(err, MediaError):
        return err
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return MediaError("disk full while writing; nothing was written", final)
    if isinstance(err, OSError) and not isinstance(err, av.FFmpegError):
        return MediaError(f"cannot write the output ({err.strerror or err})", final)
    return MediaError(f"encoding failed ({describe_av_error(err)})", final)


class MediaWriter:
    """Encode frames to a temporary file beside ``final_path``; ``commit`` renames it into place."""

    def __init__(self, final_path: Path, info: MediaInfo, options: EncodeOptions = EncodeOptions(),
                 copy_streams: bool = True) -> None:
        self.final_path = Path(os.path.abspath(final_path))
        self.info = info
        self.options = options
        # False for the segments of a film (colorize.pipeline.segments): the video alone, the other
        # streams are copied once when the segments are joined (colorize.io.join).
        self.copy_streams = copy_streams
        self.frames_written = 0
        self._file = None
        self._container = None
        self._copier = None
        self._video = None
        self._closed = False
        # write() may run in an encoder thread while Ctrl-C makes the main thread abort(): the
        # lock makes abort wait for the frame in flight instead of closing FFmpeg under it.
        self._lock = threading.RLock()
        if _same_file(Path(info.path), self.final_path):
            raise MediaError("the output would overwrite the input; choose another output", self.final_path)
        folder = self.final_path.parent
        if not folder.is_dir():
            raise MediaError(f"the output folder {folder} does not exist", self.final_path)
        if info.is_image:
            from colorize.io.images import image_codec_for

            image_codec_for(self.final_path)
        else:
            self._format = format_for(self.final_path)
            codec_id = _codec_id_name(options.codec)
            if codec_id not in supported_codecs(self._format) and options.codec not in supported_codecs(self._format):
                raise MediaError(f"{self.final_path.suffix} files cannot hold {options.codec} video; use .mkv", self.final_path)
            if copy_streams:
                check_streams_fit(info.path, info.video_index, self.final_path)

        stem, ext = self.final_path.stem, self.final_path.suffix
        self.temp_path = folder / f".{stem}.partial-{secrets.token_hex(4)}{ext}"
        try:
            self._file = _open_temp(self.temp_path)
        except OSError as err:
            raise MediaError(f"cannot write in {folder} ({err.strerror or err})", self.final_path) from err
        self._finalizer = weakref.finalize(self, _remove, self.temp_path)
        if not info.is_image:
            try:
                self._open_video(codec_id)
            except BaseException as err:
                self.abort()
                raise _write_error(err, self.final_path) from err

    # --------------------------------------------------------------------------- setup
    def _open_video(self, codec_id: str) -> None:
        info = self.info
        out = av.open(self._file, "w", format=self._format)
        self._container = out
        copy_tags(info.metadata, out.metadata)
        self._copier = StreamCopier(info.path)
        fps = info.fps or Fraction(25)
        self._tb = info.time_base or Fraction(1, 1) / fps
        self._fps = fps
        with av.open(str(info.path), metadata_errors="replace") as inp:
            chapters = inp.chapters()
            if chapters:  # reel/scene markers of archival masters
                out.set_chapters(chapters)
            order = [(s.index, s) for s in inp.streams]
            for index, s in order:
                if index == info.video_index:
                    self._video = self._add_video(out, codec_id, fps)
                elif self.copy_streams and is_copied(s, info.video_index):
                    self._copier.add(out, index)

    def _add_video(self, out, codec_id: str, fps: Fraction):
        info, opts = self.info, self.options
        vs = out.add_stream(opts.codec, rate=fps)
        vs.width, vs.height = info.width, info.height
        self.pix_fmt = choose_pix_fmt(info.pix_fmt, opts.codec, opts.pix_fmt)
        vs.pix_fmt = self.pix_fmt
        vs.time_base = self._tb
        if info.rotation:
            # Frames are written as stored; the display matrix tells players to turn them, as the
            # input's did.
            vs.set_display_rotation(info.rotation)
        cc = vs.codec_context
        cc.time_base = self._tb
        # Pixel aspect ratio, in all three places a player may look: the encoder (H.264/HEVC VUI,
        # the mp4/mov 'pasp' atom), every frame (FFV1 codes it per slice from the frame alone: see
        # _with_sar) and, for Matroska, the track header (written at commit, see _write_aspect).
        self.sar = Fraction(info.sar) if info.sar else Fraction(1)
        cc.sample_aspect_ratio = self.sar
        self._sar_graph = None
        cc.thread_count = 0
        self.matrix = yuv_matrix(info)
        self.full_range = is_full_range(info.pix_fmt, info.color_range) or self.pix_fmt.startswith("yuvj")
        # A Y'CbCr input that leaves its matrix or range unspecified gives an output that does too:
        # we then work in what players assume for it (BT.709 from 720 lines up, else BT.601; limited
        # range), so the pictures agree, and the tags claim no more than the input did. Grey and RGB
        # inputs carry no Y'CbCr tags of their own: the output states what was used.
        from_yuv = info.pix_fmt.startswith("yuv") and not info.pix_fmt.startswith("yuvj")
        matrix_tag = None if from_yuv and info.colorspace is None else self.matrix
        range_tag = None if from_yuv and info.color_range is None and not self.full_range else (
            "pc" if self.full_range else "tv")
        self._tags = {
            "colorspace": enum_value(COLORSPACES, matrix_tag),
            "color_range": enum_value(RANGES, range_tag),
            "color_primaries": enum_value(PRIMARIES, info.color_primaries),
            "color_trc": enum_value(TRANSFERS, info.color_trc),
        }
        for key, value in self._tags.items():
            setattr(cc, key, value)
        vs.options = _codec_options(codec_id, opts, info.width, info.height, info.field_order)
        if info.field_order is not None:
            cc.field_order = enum_value(FIELD_ORDERS, info.field_order)
        copy_tags(info.video_metadata, vs.metadata)
        self.out_depth = _depth_of(self.pix_fmt)
        chroma = av.VideoFormat(self.pix_fmt, info.width, info.height).components[1]
        plane = (chroma.height, chroma.width)
        # Chroma may be handed over at the chroma planes' own size where they are subsampled
        # (4:2:0, 4:2:2) and the picture is progressive; interlaced pictures subsample each field.
        self._chroma_size = plane if plane != (info.height, info.width) and not info.interlaced else None
        return vs

    @property
    def chroma_size(self) -> tuple[int, int] | None:
        """(height, width) of the output's chroma planes when :meth:`write` also takes ab (and L)
        at that size: subsampled, progressive video. None for stills, interlaced video and
        full-size chroma (4:4:4): then ab comes at the frame size."""
        return None if self.info.is_image else self._chroma_size

    # --------------------------------------------------------------------------- writing
    def write(self, src: SourceFrame, ab: np.ndarray, l: np.ndarray | None = None) -> None:
        """Add one frame: ``ab`` float32 H x W x 2 at full resolution. ``l`` (optional, (H, W) or
        (1, H, W) L of ``src.rgb``) saves recomputing it. Where :attr:`chroma_size` is set, ab
        and ``l`` (then required) may both come at that size instead: L area-resampled to it, and
        the chroma meant for it (the luma plane is still the source's own)."""
        with self._lock:
            self._write_locked(src, ab, l)

    def _write_locked(self, src: SourceFrame, ab: np.ndarray, l) -> None:
        if self._closed:
            raise MediaError("write after commit/abort", self.final_path)
        try:
            if self.info.is_image:
                self._write_image(src, ab, l)
            else:
                self._write_video(src, ab, l)
        except BaseException as err:
            self.abort()
            if isinstance(err, (KeyboardInterrupt, SystemExit, ValueError)):
                raise
            raise _write_error(err, self.final_path) from err
        self.frames_written += 1

    def _l(self, src: SourceFrame, l) -> np.ndarray:
        if l is None:
            return l_numpy(src.rgb)
        arr = np.asarray(l.detach().cpu() if hasattr(l, "detach") else l, dtype=np.float32)
        return arr.reshape(arr.shape[-2:])

    def _write_image(self, src: SourceFrame, ab: np.ndarray, l) -> None:
        import torch

        from colorize.io.images import encode_image

        if self.frames_written:
            raise MediaError("a still image takes exactly one frame", self.final_path)
        lt = torch.from_numpy(self._l(src, l)).unsqueeze(0)
        rgb = quantize_rgb(merge_rgb(lt, ab), src.rgb.dtype)
        data = encode_image(self.final_path, rgb, src.alpha, self.options.image_quality)
        self._file.write(data)

    def _output_frame(self, src: SourceFrame, ab: np.ndarray, l) -> av.VideoFrame:
        info = self.info
        h, w = info.height, info.width
        ab = np.asarray(ab, dtype=np.float32)
        plane = self.chroma_size
        if ab.shape != (h, w, 2) and not (plane is not None and ab.shape == (*plane, 2) and l is not None):
            at = f" or {plane[0]} x {plane[1]} x 2 with L at that size" if plane is not None else ""
            raise ValueError(f"ab must be {h} x {w} x 2 (full resolution){at}, got {ab.shape}")
        frame = av.VideoFrame(w, h, self.pix_fmt)
        planes = frame.planes
        dtype = np.uint16 if self.out_depth > 8 else np.uint8
        _plane_view(planes[0], dtype)[...] = self._luma(src)
        cb, cr = chroma_planes(self._l(src, l), ab, self.matrix, self.full_range, self.out_depth,
                               (planes[1].height, planes[1].width), interlaced=self.info.interlaced)
        _plane_view(planes[1], dtype)[...] = cb
        _plane_view(planes[2], dtype)[...] = cr
        frame = self._with_sar(frame)
        for key, value in self._tags.items():
            setattr(frame, key, value)
        return frame

    def _with_sar(self, frame: av.VideoFrame) -> av.VideoFrame:
        """The frame carrying the pixel aspect ratio (PyAV frames cannot set it; libavfilter's
        setsar can, without copying the picture). Square pixels need nothing."""
        if self.sar == 1:
            return frame
        if self._sar_graph is None:
            g = av.filter.Graph()
            src = g.add("buffer", video_size=f"{frame.width}x{frame.height}",
                        pix_fmt=str(int(av.VideoFormat(self.pix_fmt))), time_base="1/1", pixel_aspect="1/1")
            sar = g.add("setsar", sar=f"{self.sar.numerator}/{self.sar.denominator}", max=str(2**31 - 1))
            sink = g.add("buffersink")
            src.link_to(sar)
            sar.link_to(sink)
            g.configure()
            self._sar_graph = g
        frame.pts = self.frames_written  # placeholders: the caller sets the real timing
        frame.time_base = Fraction(1, 1)
        self._sar_graph.vpush(frame)
        return self._sar_graph.vpull()

    def _luma(self, src: SourceFrame) -> np.ndarray:
        """The source's own Y' plane (bit for bit), rescaled only if the bit depth changes."""
        f = src.frame
        name = f.format.name if f is not None else ""
        if f is not None and (name.startswith(("yuv", "yuvj", "gray", "nv", "p01"))):
            src_depth = _depth_of(name)
            y = _plane_view(f.planes[0], np.uint16 if src_depth > 8 else np.uint8)
            if name.startswith("p01"):  # MSB-aligned 16-bit containers
                y = y >> (16 - src_depth)
            if src_depth == self.out_depth:
                return y
            if src_depth > self.out_depth:
                shift = src_depth - self.out_depth
                return ((y.astype(np.uint32) + (1 << (shift - 1))) >> shift).clip(0, (1 << self.out_depth) - 1)
            return y.astype(np.uint16) << (self.out_depth - src_depth)
        return luma_plane(src.rgb, self.matrix, self.full_range, self.out_depth)

    def _write_video(self, src: SourceFrame, ab: np.ndarray, l) -> None:
        frame = self._output_frame(src, ab, l)
        if src.pts is not None and src.time_base is not None:
            frame.pts, frame.time_base = src.pts, src.time_base
            if src.frame is not None and src.frame.duration:
                frame.duration = src.frame.duration  # keeps the last frame's length (and the stream's)
        else:  # a stream without timestamps: constant rate from the index
            frame.time_base = self._tb
            frame.pts = int(round(src.index / self._fps / self._tb))
        for packet in self._video.encode(frame):
            self._mux_video(packet)

    def _flush_video(self) -> None:
        for packet in self._video.encode(None):
            self._mux_video(packet)

    def _mux_video(self, packet) -> None:
        ts = packet.dts if packet.dts is not None else packet.pts
        if ts is not None and packet.time_base is not None:
            self._copier.mux_until(self._container, ts * packet.time_base)
        self._container.mux(packet)

    # --------------------------------------------------------------------------- finishing
    def commit(self) -> None:
        """Flush, close, fsync and atomically rename onto ``final_path``."""
        with self._lock:
            self._commit_locked()

    def _commit_locked(self) -> None:
        if self._closed:
            raise MediaError("commit after commit/abort", self.final_path)
        try:
            if self.frames_written == 0:
                raise MediaError("no frames were written; output discarded", self.final_path)
            if self._container is not None:
                self._flush_video()
                self._copier.mux_until(self._container, None)
                track = 1 + sum(1 for s in self._container.streams
                                if s.index < self._video.index and s.type != "attachment")
                self._container.close()
                self._copier.close()
                self._write_aspect(track)
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self.temp_path, self.final_path)
        except BaseException as err:
            self.abort()
            if isinstance(err, (KeyboardInterrupt, SystemExit)):
                raise
            raise _write_error(err, self.final_path) from err
        self._closed = True
        self._finalizer.detach()
        _fsync_dir(self.final_path.parent)

    def _write_aspect(self, track: int) -> None:
        """Matroska/WebM keep the pixel aspect ratio in the track header, which PyAV cannot fill
        (FFmpeg reads it from AVStream, PyAV sets only the encoder's): add it to the closed file
        and check that FFmpeg reads it back, else put the header back as it was."""
        if self.sar == 1 or self._format not in ("matroska", "webm"):
            return
        self._file.flush()
        undo = write_display_aspect(self._file, track, self.info.width, self.info.height, self.sar,
                                    webm=self._format == "webm")
        if undo is None:
            return  # no room: the bitstream (H.264 VUI, FFV1 slices) still carries it
        try:
            with av.open(str(self.temp_path)) as check:
                ok = Fraction(check.streams[self._video.index].sample_aspect_ratio or 0) == self.sar
        except (av.FFmpegError, IndexError):
            ok = False
        if not ok:
            restore(self._file, undo)

    def abort(self) -> None:
        """Discard everything written; never touches ``final_path``. Safe to call twice, and from
        another thread than the one writing."""
        with self._lock:
            self._abort_locked()

    def _abort_locked(self) -> None:
        self._closed = True
        for close in (
            getattr(self._container, "close", None),
            getattr(self._copier, "close", None),
            getattr(self._file, "close", None),
        ):
            if close is None:
                continue
            try:
                close()
            except BaseException:
                pass  # the file is being thrown away; its trailer does not matter
        _remove(self.temp_path) if hasattr(self, "temp_path") else None

    def __enter__(self) -> "MediaWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.commit()
        else:
            self.abort()
        return False


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
