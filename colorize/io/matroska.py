"""Write the display aspect ratio into a finished Matroska/WebM file, in place.

FFmpeg's Matroska muxer takes the pixel aspect ratio from ``AVStream.sample_aspect_ratio``, which
PyAV cannot set (it sets only the encoder's). H.264/HEVC still carry the ratio in their bitstream,
but FFV1 does not keep it there for a container to find, so an FFV1 master came out square-pixelled
(a 4:3-pixel PAL transfer displayed squeezed). This module adds DisplayWidth / DisplayHeight /
DisplayUnit to the video track, exactly as ``ffmpeg`` itself writes them.

The file keeps its size and everything from the end of ``Tracks`` on (clusters, cues, tags) stays
byte for byte where it was: the few bytes needed come out of the Void that FFmpeg reserves inside
each Matroska track entry, or else (WebM) out of the Void it leaves after the SeekHead, sliding the
Info element down and fixing its SeekHead position. CRC-32 elements are recomputed. Anything
unexpected (no room, an unknown layout) leaves the file untouched.
"""

from __future__ import annotations

import zlib
from fractions import Fraction
from typing import BinaryIO

_EBML = 0x1A45DFA3
_SEGMENT = 0x18538067
_TRACKS = 0x1654AE6B
_CLUSTER = 0x1F43B675
_SEEKHEAD = 0x114D9B74
_SEEK = 0x4DBB
_SEEK_POSITION = 0x53AC
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


def _with_crc(element: bytes) -> bytes:
    """Recompute a level-1 element's CRC-32 (its first child, over every following data byte)."""
    _, n = _read_id(element, 0)
    size, m = _read_size(element, n)
    body = n + m
    first = next(_children(element, body, body + size), None)
    if first is None or first[0] != _CRC32:
        return element
    out = bytearray(element)
    out[first[2]:first[3]] = zlib.crc32(element[first[3]:body + size]).to_bytes(4, "little")
    return bytes(out)


def _resized(element: bytes, new_data: bytes) -> bytes:
    """``element`` with its data replaced, its size field keeping its width where it can."""
    _, n = _read_id(element, 0)
    _, m = _read_size(element, n)
    try:
        size = _encode_size(len(new_data), m)
    except _Layout:
        size = _encode_size(len(new_data))
    return element[:n] + size + new_data


def _segment_head(f: BinaryIO) -> tuple[int, bytes, list[tuple[int, int, int, int]]]:
    """(file offset of the Segment's data, its bytes up to the end of Tracks, the top-level
    children (id, start, data, end) up to and including Tracks, offsets relative to the data)."""
    f.seek(0)
    head = f.read(64)
    eid, n = _read_id(head, 0)
    if eid != _EBML:
        raise _Layout("not an EBML file")
    size, m = _read_size(head, n)
    if size is None:
        raise _Layout("EBML header of unknown size")
    pos = n + m + size
    f.seek(pos)
    head = f.read(16)
    eid, n = _read_id(head, 0)
    if eid != _SEGMENT:
        raise _Layout("no Segment")
    _, m = _read_size(head, n)
    seg = pos + n + m
    rel, children = 0, []
    while rel < _MAX_HEADER_SCAN:
        f.seek(seg + rel)
        head = f.read(16)
        if len(head) < 2:
            break
        eid, n = _read_id(head, 0)
        size, m = _read_size(head, n)
        if eid == _CLUSTER or size is None:
            break
        children.append((eid, rel, rel + n + m, rel + n + m + size))
        rel += n + m + size
        if eid == _TRACKS:
            f.seek(seg)
            data = f.read(rel)
            if len(data) != rel:
                raise _Layout("truncated header")
            return seg, data, children
    raise _Layout("no Tracks before the first Cluster")


def _new_tracks(tracks: bytes, track_number: int, elements: bytes) -> bytes:
    """The Tracks element with ``elements`` in the video track: the same length when the track
    entry's reserved Void has room, else longer."""
    _, n = _read_id(tracks, 0)
    size, m = _read_size(tracks, n)
    body = n + m
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
        new_video = _resized(tracks[v_start:v_end], kept + elements)
        grow = len(new_video) - (v_end - v_start)
        # Take the difference out of a Void after the Video element, when there is one...
        void = next((k for k in kids if k[0] == _VOID and k[1] >= v_end and _fits_void(k[3] - k[1] - grow)), None)
        if void is not None:
            _, w_start, _, w_end = void
            entry_data = (tracks[c_data:v_start] + new_video + tracks[v_end:w_start]
                          + _void(w_end - w_start - grow) + tracks[w_end:c_end])
        else:  # ...else the track entry grows
            entry_data = tracks[c_data:v_start] + new_video + tracks[v_end:c_end]
        entry = _resized(tracks[c_start:c_end], entry_data)
        new = _resized(tracks, tracks[body:c_start] + entry + tracks[c_end:body + size])
        return _with_crc(new)
    raise _Layout(f"no track number {track_number}")


def _moved_seekheads(head: bytes, children, lo: int, hi: int, shift: int) -> bytes:
    """SeekHeads with every position in [lo, hi) moved by ``shift`` (same field widths)."""
    out = bytearray(head)
    for eid, start, data, end in children:
        if eid != _SEEKHEAD:
            continue
        for sid, _, s_data, s_end in _children(head, data, end):
            if sid != _SEEK:
                continue
            for pid, _, p_data, p_end in _children(head, s_data, s_end):
                if pid != _SEEK_POSITION:
                    continue
                value = int.from_bytes(head[p_data:p_end], "big")
                if lo <= value < hi:
                    out[p_data:p_end] = (value + shift).to_bytes(p_end - p_data, "big")
        out[start:end] = _with_crc(bytes(out[start:end]))
    return bytes(out)


def _patched_head(head: bytes, children, track_number: int, elements: bytes) -> bytes:
    *before, (_, t_start, _, t_end) = children
    tracks = _new_tracks(head[t_start:t_end], track_number, elements)
    grow = len(tracks) - (t_end - t_start)
    if grow == 0:
        return head[:t_start] + tracks
    # The track header grew: take the bytes from a top-level Void before it (FFmpeg leaves one
    # after the SeekHead) and slide what lies between towards the start. Clusters, Cues and every
    # byte after Tracks stay where they are; only SeekHead positions of the slid elements change.
    void = next(((s, e) for k, s, _, e in before if k == _VOID and _fits_void(e - s - grow)), None)
    if void is None or any(k == _SEEKHEAD and s > void[0] for k, s, _, _ in before):
        raise _Layout("no room before the track header")
    v_start, v_end = void
    moved = _moved_seekheads(head, children, v_end, t_end, -grow)
    new = moved[:v_start] + _void(v_end - v_start - grow) + moved[v_end:t_start] + tracks
    if len(new) != len(head):
        raise _Layout("the edit would change the header's size")
    return new


def write_display_aspect(f: BinaryIO, track_number: int, width: int, height: int, sar: Fraction,
                         webm: bool = False) -> tuple[int, bytes] | None:
    """Give ``track_number`` (1-based, as FFmpeg numbers tracks) the pixel aspect ratio ``sar`` in
    the open, finished file ``f`` (read/write, binary).

    Returns ``(offset, original bytes)`` of the region it rewrote, so that a caller whose check of
    the result fails can put it back; None when it changed nothing."""
    try:
        offset, head, children = _segment_head(f)
        patched = _patched_head(head, children, track_number, display_elements(width, height, sar, webm))
    except (_Layout, IndexError, StopIteration):
        return None
    if len(patched) != len(head):
        return None
    start = next(i for i, (a, b) in enumerate(zip(head, patched)) if a != b) if patched != head else len(head)
    if start == len(head):
        return None
    f.seek(offset + start)
    f.write(patched[start:])
    f.flush()
    return offset + start, head[start:]


def restore(f: BinaryIO, undo: tuple[int, bytes]) -> None:
    """Undo :func:`write_display_aspect`."""
    offset, original = undo
    f.seek(offset)
    f.write(original)
    f.flush()
