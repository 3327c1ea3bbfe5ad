"""Stills: jpg/png/tiff/webp in and out; 16-bit stays 16-bit; lightness kept; colour applied."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from colorize.color.lab import rgb_to_lab
from colorize.io import MediaWriter, iter_frames, output_path_for, probe


def _grey(depth: int, h: int = 40, w: int = 56) -> np.ndarray:
    top = 255 if depth == 8 else 65535
    y, x = np.mgrid[0:h, 0:w]
    img = np.where(x < w // 2, 0.3, 0.65) + 0.001 * y  # flat halves, a 16-bit-fine ramp
    return (img * top).round().astype(np.uint8 if depth == 8 else np.uint16)


def _lab(rgb: np.ndarray) -> torch.Tensor:
    top = 255.0 if rgb.dtype == np.uint8 else 65535.0
    return rgb_to_lab(torch.from_numpy(rgb.astype(np.float32) / top).permute(2, 0, 1).double())


CASES = [("png", 8), ("png", 16), ("tiff", 8), ("tiff", 16), ("jpg", 8), ("webp", 8), ("bmp", 8)]


@pytest.mark.parametrize("ext,depth", CASES)
def test_still_round_trip(tmp_path, ext, depth):
    src = tmp_path / f"photo.{ext}"
    assert cv2.imwrite(str(src), _grey(depth))
    info = probe(src)
    assert info.is_image and info.bit_depth == depth and (info.width, info.height) == (56, 40)
    dst = output_path_for(src, info, None, None)
    assert dst == tmp_path / f"photo_colorized.{ext}"
    frames = list(iter_frames(src, info))
    assert len(frames) == 1 and frames[0].rgb.shape == (40, 56, 3)
    assert frames[0].rgb.dtype == (np.uint16 if depth == 16 else np.uint8)
    with MediaWriter(dst, info) as writer:
        writer.write(frames[0], np.broadcast_to(np.float32([25.0, -15.0]), (40, 56, 2)).copy())

    out_info = probe(dst)
    assert out_info.bit_depth == depth and (out_info.width, out_info.height) == (56, 40)
    out = next(iter(iter_frames(dst, out_info))).rgb
    assert out.dtype == frames[0].rgb.dtype
    if depth == 16:  # real 16-bit values, not 8-bit ones scaled up
        assert np.any(out % 257 != 0)
    lab_in, lab_out = _lab(frames[0].rgb), _lab(out)
    lossy = ext in ("jpg", "webp")
    assert (lab_out[0] - lab_in[0]).abs().mean() < (1.0 if lossy else 0.2)  # lightness kept
    flat = lab_out[1:, 4:-4, 4:24].reshape(2, -1)
    assert (flat - torch.tensor([25.0, -15.0], dtype=flat.dtype).view(2, 1)).abs().mean() < (2.5 if lossy else 0.5)


def test_png_alpha_is_kept(tmp_path):
    rgba = np.dstack([_grey(8)] * 3 + [np.full((40, 56), 200, np.uint8)])
    cv2.imwrite(str(tmp_path / "a.png"), rgba)
    info = probe(tmp_path / "a.png")
    with MediaWriter(tmp_path / "b.png", info) as writer:
        writer.write(next(iter_frames(info.path, info)), np.zeros((40, 56, 2), np.float32))
    out = cv2.imread(str(tmp_path / "b.png"), cv2.IMREAD_UNCHANGED)
    assert out.shape == (40, 56, 4) and np.all(out[:, :, 3] == 200)


def test_still_takes_one_frame(tmp_path):
    cv2.imwrite(str(tmp_path / "p.png"), _grey(8))
    info = probe(tmp_path / "p.png")
    src = next(iter_frames(info.path, info))
    writer = MediaWriter(tmp_path / "q.png", info)
    writer.write(src, np.zeros((40, 56, 2), np.float32))
    with pytest.raises(Exception):
        writer.write(src, np.zeros((40, 56, 2), np.float32))
    assert not writer.temp_path.exists()


def test_exif_orientation_is_applied(tmp_path):
    """A camera JPEG stored landscape with "rotate 90" in EXIF: we read (and write) it upright."""
    img = np.zeros((20, 40), np.uint8)
    img[:, :10] = 220  # a bright band on the stored left edge
    data = cv2.imencode(".jpg", img)[1].tobytes()
    exif = b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00\x00\x00\x00\x00"
    (tmp_path / "cam.jpg").write_bytes(data[:2] + b"\xff\xe1" + (len(exif) + 2).to_bytes(2, "big") + exif + data[2:])
    info = probe(tmp_path / "cam.jpg")
    assert (info.width, info.height) == (20, 40)
    rgb = next(iter(iter_frames(info.path, info))).rgb
    assert rgb[:10, :, 0].mean() > 150 and rgb[-10:, :, 0].mean() < 50  # the band is now on top
