"""Write the display aspect ratio into a finished Matroska/WebM file, in place.

FFmpeg's Matroska muxer takes the pixel aspect ratio from ``AVStream.sample_aspect_ratio``, which
PyAV cannot set (it sets only the encoder's). H.264/HEVC still carry the ratio in their bitstream,
but FFV1 does not keep it there for a container to find, so an FFV1 master came out square-pixelled
(a 4:3-pixel PAL transfer displayed squeezed). This module adds DisplayWidth / DisplayHeight /
DisplayUnit to the video track, exactly as ``ffmpeg`` itself writes them.

The edit never moves a byte outside the ``Tracks`` element: the few bytes it needs come out of the
Void element that FFmpeg reserves inside every track entry, and the Tracks CRC-32 is recomputed.
Anything unexpected (no room, an unknown layout) leaves the file untouched and returns False.
"""

from __future__ import annotations

import zlib
from fractions import Fraction
from typing import BinaryIO

_EBML = 0x1A45DFA3
_SEGMENT = 0x18538067
_TRACKS = 0x1654AE6B
_CLUSTER = 0x1F43B675
_TRACK_ENTRY = 0xAE
_TRACK_NUMBER = 0xD7
_VIDEO = 0xE0
_DISPLAY_WIDTH = 0x54B0
_DISPLAY_HEIGHT = 0x54BA
_DISPLAY_UNIT = 0x54B2
_VOID = 0xEC
_CRC32 = 0xBF
_UNIT_DAR = 3
_MAX_HEADER_SCAN = 64 << 20  # Tracks sit in the header; never read further than this


class _Layout(Exception):
    """The file is not laid out the way this editor can change safely."""


def _read_id(buf: bytes, pos: int) -> tuple[int, int]:
    first = buf[pos]
    length = 1
    while length <= 4 and not first & (0x80 >> (length - 1)):
        length += 1
    if length > 4 or pos + length > len(buf):
        raise _Layout("bad element id")
    return int.from_bytes(buf[pos:pos + length], "big"), length


def _read_size(buf: bytes, pos: int) -> tuple[int | None, int]:
    first = buf[pos]
    length = 1
    while length <= 8 and not first & (0x80 >> (length - 1)):
        length += 1
    if length > 8 or pos + length > len(buf):
        raise _Layout("bad element size")
    value = first & (0xFF >> length)
    for b in buf[pos + 1:pos + length]:
        value = (value << 8) | b
    unknown = value == (1 << (7 * length)) - 1
    return (None if unknown else value), length


def _children(buf: bytes, start: int, end: int):
    """(id, element start, data start, data end) of each child in buf[start:end]."""
    pos = start
    while pos < end:
        eid, n_id = _read_id(buf, pos)
        size, n_size = _read_size(buf, pos + n_id)
        data = pos + n_id + n_size
        if size is None or data + size > end:
            raise _Layout("child element of unknown size or past its parent")
        yield eid, pos, data, data + size
        pos = data + size


def _encode_id(eid: int) -> bytes:
    return eid.to_bytes((eid.bit_length() + 7) // 8, "big")


def _encode_size(size: int, length: int | None = None) -> bytes:
    need = 1
    while size >= (1 << (7 * need)) - 1:  # all-ones is reserved for "unknown"
        need += 1
    length = length or need
    if length < need or length > 8:
        raise _Layout("size does not fit its field")
    return ((1 << (7 * length)) | size).to_bytes(length, "big")


def _uint_element(eid: int, value: int) -> bytes:
    data = value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")
    return _encode_id(eid) + _encode_size(len(data)) + data


def _void(total: int) -> bytes:
    """A Void element exactly ``total`` bytes long (0, or at least 2)."""
    if total == 0:
        return b""
    if total == 1:
        raise _Layout("one spare byte cannot hold a Void")
    for n in range(1, 9):
        if total - 1 - n >= 0:
            try:
                return _encode_id(_VOID) + _encode_size(total - 1 - n, n) + bytes(total - 1 - n)
            except _Layout:
                continue
    raise _Layout("cannot build the Void")


def _fits_void(total: int) -> bool:
    return total == 0 or total >= 2


def display_elements(width: int, height: int, sar: Fraction, webm: bool) -> bytes:
    """DisplayWidth/DisplayHeight(/DisplayUnit) as FFmpeg writes them: the display aspect ratio
    (unit 3) in Matroska, display pixels in WebM (which has no DAR unit)."""
    sar = Fraction(sar)
    if webm:
        d_width = (width * sar.numerator + sar.denominator // 2) // sar.denominator
        return _uint_element(_DISPLAY_WIDTH, d_width) + _uint_element(_DISPLAY_HEIGHT, height)
    dar = Fraction(width * sar.numerator, height * sar.denominator)
    return (_uint_element(_DISPLAY_WIDTH, dar.numerator) + _uint_element(_DISPLAY_HEIGHT, dar.denominator)
            + _uint_element(_DISPLAY_UNIT, _UNIT_DAR))


def _find_tracks(f: BinaryIO) -> tuple[int, bytes]:
    """(file offset, bytes) of the whole Tracks element."""
    f.seek(0)
    head = f.read(64)
    eid, n = _read_id(head, 0)
    if eid != _EBML:
        raise _Layout("not an EBML file")
    size, m = _read_size(head, n)
    pos = n + m + (size or 0)
    f.seek(pos)
    head = f.read(16)
    eid, n = _read_id(head, 0)
    if eid != _SEGMENT:
        raise _Layout("no Segment")
    _, m = _read_size(head, n)
    pos += n + m
    while pos < _MAX_HEADER_SCAN:
        f.seek(pos)
        head = f.read(16)
        if len(head) < 2:
            break
        eid, n = _read_id(head, 0)
        size, m = _read_size(head, n)
        if eid == _CLUSTER or size is None:
            break
        if eid == _TRACKS:
            f.seek(pos)
            whole = f.read(n + m + size)
            if len(whole) != n + m + size:
                raise _Layout("truncated Tracks")
            return pos, whole
        pos += n + m + size
    raise _Layout("no Tracks before the first Cluster")


def _patched_tracks(tracks: bytes, track_number: int, elements: bytes) -> bytes:
    _, n = _read_id(tracks, 0)
    size, m = _read_size(tracks, n)
    body = n + m
    out = bytearray(tracks)
    for cid, c_start, c_data, c_end in _children(tracks, body, body + size):
        if cid != _TRACK_ENTRY:
            continue
        kids = list(_children(tracks, c_data, c_end))
        number = next((int.from_bytes(tracks[d:e], "big") for k, _, d, e in kids if k == _TRACK_NUMBER), None)
        if number != track_number:
            continue
        video = next((k for k in kids if k[0] == _VIDEO), None)
        if video is None:
            raise _Layout("the track has no Video element")
        _, v_start, v_data, v_end = video
        kept = b"".join(tracks[s:e] for k, s, _, e in _children(tracks, v_data, v_end)
                        if k not in (_DISPLAY_WIDTH, _DISPLAY_HEIGHT, _DISPLAY_UNIT))
        v_id = tracks[v_start:v_start + 1]
        v_size_len = v_data - v_start - 1
        new_data = kept + elements
        try:
            new_video = v_id + _encode_size(len(new_data), v_size_len) + new_data
        except _Layout:
            new_video = v_id + _encode_size(len(new_data)) + new_data
        grow = len(new_video) - (v_end - v_start)
        # Take (or give back) the difference from a Void after the Video element.
        void = next((k for k in kids if k[0] == _VOID and k[1] >= v_end and _fits_void(k[3] - k[1] - grow)), None)
        if void is None:
            raise _Layout("no room in the track entry")
        _, w_start, _, w_end = void
        rebuilt = (new_video + tracks[v_end:w_start] + _void(w_end - w_start - grow))
        if len(rebuilt) != w_end - v_start:
            raise _Layout("the edit would change the track entry's size")
        out[v_start:w_end] = rebuilt
        break
    else:
        raise _Layout(f"no track number {track_number}")
    # Level-1 CRC-32: the first child, over every following byte of the element's data.
    first = next(_children(bytes(out), body, body + size))
    if first[0] == _CRC32:
        crc = zlib.crc32(bytes(out[first[3]:body + size]))
        out[first[2]:first[3]] = crc.to_bytes(4, "little")
    return bytes(out)


def write_display_aspect(f: BinaryIO, track_number: int, width: int, height: int, sar: Fraction,
                         webm: bool = False) -> tuple[int, bytes] | None:
    """Give ``track_number`` (1-based, as FFmpeg numbers tracks) the pixel aspect ratio ``sar`` in
    the open, finished file ``f`` (read/write, binary).

    Returns ``(offset, original bytes)`` of the region it rewrote, so that a caller whose check of
    the result fails can put it back; None when it changed nothing."""
    try:
        offset, tracks = _find_tracks(f)
        patched = _patched_tracks(tracks, track_number, display_elements(width, height, sar, webm))
    except (_Layout, IndexError, StopIteration):
        return None
    if len(patched) != len(tracks):
        return None
    f.seek(offset)
    f.write(patched)
    f.flush()
    return offset, tracks


def restore(f: BinaryIO, undo: tuple[int, bytes]) -> None:
    """Undo :func:`write_display_aspect`."""
    offset, original = undo
    f.seek(offset)
    f.write(original)
    f.flush()
