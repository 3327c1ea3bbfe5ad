"""Media I/O: probe, decode (a frame generator), encode (video and stills), packet remux.

The contract with the pipeline — all names re-exported here:

* ``MediaError``: one-line, user-facing message (missing file, not media, no video, zero frames,
  corrupt/truncated, unsupported codec, disk full, output not writable, container can't hold a stream).
* ``probe(path) -> MediaInfo`` (``StreamInfo`` per stream); ``MediaInfo.as_dict()`` for sidecars;
  extras: ``frame_estimate`` (header count, else duration x fps, for progress bars),
  ``video_index`` and ``video_metadata`` (the colourized stream and its tags), ``field_order``
  and ``interlaced``.
* ``iter_frames(path, info)`` yields ``SourceFrame`` (index, pts, time_base, rgb, frame, alpha);
  a generator; raises MediaError on corrupt data and, at the end, when a file is truncated.
  Stills come out upright (EXIF orientation applied); ``alpha`` is kept for png/tiff/webp.
* ``output_path_for(input, info, output=None, codec=None) -> Path``: ``<stem>_colorized.<ext>``
  beside the input, or in ``output`` when it is a folder, or ``output`` itself.
* ``EncodeOptions(codec, crf, preset, pix_fmt, image_quality, tune)``.
* ``MediaWriter(final_path, info, options)``: ``write(src, ab, l=None)`` (ab float32 H x W x 2 at
  full size; ``l`` optional full-res L of ``src.rgb``, (H, W) or (1, H, W), saves recomputing it),
  ``commit()``, ``abort()`` (safe from another thread), and ``with`` (commit on success, abort on
  any exception). ``temp_path`` is the partial file in the output folder. Copies audio, subtitle,
  data and attachment streams packet for packet, chapters, container/stream tags (title,
  creation_time, timecode, language), colour tags, SAR, field order (x264 codes interlaced
  sources as fields; chroma is subsampled per field) and every PTS.
  Not kept: the display-matrix rotation (PyAV cannot set it on an output stream) — the pixels
  are written as stored, so a rotated phone clip plays unrotated.
"""

from colorize.io.decode import SourceFrame, iter_frame_range, iter_frames
from colorize.io.encode import EncodeOptions, MediaWriter, output_path_for
from colorize.io.errors import MediaError
from colorize.io.probe import IMAGE_EXTENSIONS, MediaInfo, StreamInfo, probe

__all__ = [
    "EncodeOptions",
    "IMAGE_EXTENSIONS",
    "MediaError",
    "MediaInfo",
    "MediaWriter",
    "SourceFrame",
    "StreamInfo",
    "iter_frame_range",
    "iter_frames",
    "output_path_for",
    "probe",
]
