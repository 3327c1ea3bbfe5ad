"""Still images (jpg, png, tiff, webp) through OpenCV: 8 and 16 bit, grey or colour, with alpha.

OpenCV is used rather than FFmpeg because it reads and writes 16-bit PNG/TIFF and keeps the
bytes-in-memory encode step separate from the file write (so the writer controls the temporary
file, fsync and rename). Arrays leave this module in RGB order.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from colorize.io.errors import MediaError
from colorize.io.probe import IMAGE_EXTENSIONS, MediaInfo, StreamInfo

# What each format can hold: (max bit depth, alpha).
_CAPS = {"mjpeg": (8, False), "png": (16, True), "tiff": (16, True), "webp": (8, True), "bmp": (8, False)}


def read_image(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """-> (rgb H x W x 3 uint8/uint16, alpha H x W or None). Raises MediaError."""
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise MediaError(f"cannot read the file ({err.strerror})", path) from err
    if data.size == 0:
        raise MediaError("empty file (0 bytes)", path)
    # Without IMREAD_UNCHANGED OpenCV applies the EXIF orientation, so the pixels come out the
    # way viewers show them (we write no EXIF back); the alpha channel is read separately.
    img = cv2.imdecode(data, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)
    if img is None:
        raise MediaError("not a readable image (corrupt or unsupported format)", path)
    if img.dtype not in (np.uint8, np.uint16):
        raise MediaError(f"unsupported image sample type {img.dtype} (8- or 16-bit integer only)", path)
    if Path(path).suffix.lower() in (".png", ".tif", ".tiff", ".webp"):
        raw = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        if raw is not None and raw.ndim == 3 and raw.shape[2] == 4 and raw.shape[:2] == img.shape[:2]:
            img = raw
    alpha = None
    if img.ndim == 2:
        rgb = np.repeat(img[:, :, None], 3, axis=2)
    elif img.shape[2] == 1:
        rgb = np.repeat(img, 3, axis=2)
    elif img.shape[2] == 4:
        rgb = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
        alpha = img[:, :, 3].copy()
    else:
        rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(rgb), alpha


def probe_image(path: Path) -> MediaInfo:
    path = Path(path)
    rgb, alpha = read_image(path)
    codec = IMAGE_EXTENSIONS.get(path.suffix.lower(), "image")
    depth = 16 if rgb.dtype == np.uint16 else 8
    pix_fmt = ("rgba64" if alpha is not None else "rgb48") if depth == 16 else ("rgba" if alpha is not None else "rgb24")
    return MediaInfo(
        path=path,
        is_image=True,
        container="image2",
        width=rgb.shape[1],
        height=rgb.shape[0],
        sar=Fraction(1, 1),
        fps=None,
        time_base=None,
        frames=1,
        duration_s=None,
        pix_fmt=pix_fmt,
        bit_depth=depth,
        codec=codec,
        color_range="pc",
        color_primaries=None,
        color_trc="iec61966-2-1",
        colorspace="gbr",
        rotation=0,
        streams=(StreamInfo(index=0, kind="video", codec=codec),),
        metadata={},
    )


def image_codec_for(path: Path) -> str:
    codec = IMAGE_EXTENSIONS.get(Path(path).suffix.lower())
    if codec is None:
        allowed = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise MediaError(f"cannot write a still image with this extension (use one of {allowed})", path)
    return codec


def encode_image(path: Path, rgb: np.ndarray, alpha: np.ndarray | None = None, quality: int = 95) -> bytes:
    """Encode RGB (uint8 or uint16) for ``path``'s format; 16 bit stays 16 bit where it can."""
    codec = image_codec_for(path)
    max_depth, has_alpha = _CAPS[codec]
    if rgb.dtype == np.uint16 and max_depth == 8:
        rgb = (rgb.astype(np.uint32) * 255 + 32767) // 65535
        rgb = rgb.astype(np.uint8)
        if alpha is not None:
            alpha = ((alpha.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if alpha is not None and has_alpha:
        img = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGRA)
        img[:, :, 3] = alpha.astype(rgb.dtype)
    else:
        img = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    params: list[int] = []
    if codec == "mjpeg":
        params = [cv2.IMWRITE_JPEG_QUALITY, quality]
        if hasattr(cv2, "IMWRITE_JPEG_SAMPLING_FACTOR"):  # colour deserves full-resolution chroma
            params += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
    elif codec == "webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, quality]
    elif codec == "tiff":  # OpenCV's default, LZW, is unreadable to tifffile without imagecodecs; zlib is everywhere
        params = [cv2.IMWRITE_TIFF_COMPRESSION, cv2.IMWRITE_TIFF_COMPRESSION_ADOBE_DEFLATE]
    ok, buf = cv2.imencode(Path(path).suffix.lower(), img, params)
    if not ok:
        raise MediaError("the image encoder failed", path)
    return buf.tobytes()
