"""What an output claims about its colour: no more than the input did; and TIFFs any reader opens."""

from __future__ import annotations

import io

import numpy as np
import pytest

from colorize.io import probe
from colorize.io.images import encode_image
from tests.io.test_roundtrip import colorize_file
from tests.media import make_clip


def test_unspecified_colour_tags_stay_unspecified(tmp_path):
    src = make_clip(tmp_path / "untagged.mkv", "mkv", colorspace=2, color_range=0, frames=3, codec="ffv1")
    before = probe(src)
    assert (before.colorspace, before.color_primaries, before.color_trc, before.color_range) == (None,) * 4
    _, after = colorize_file(src, tmp_path / "out.mkv")
    assert (after.colorspace, after.color_primaries, after.color_trc, after.color_range) == (None,) * 4


def test_specified_colour_tags_are_kept(tmp_path):
    src = make_clip(tmp_path / "tagged.mkv", "mkv", colorspace=1, color_range=1, frames=3, codec="ffv1")
    _, after = colorize_file(src, tmp_path / "out.mkv")
    assert (after.colorspace, after.color_primaries, after.color_trc, after.color_range) == ("bt709",) * 3 + ("tv",)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_tiff_output_opens_without_imagecodecs(dtype):
    tifffile = pytest.importorskip("tifffile")
    top = np.iinfo(dtype).max
    rgb = np.random.default_rng(0).integers(0, top, (21, 34, 3), endpoint=True).astype(dtype)
    data = encode_image("photo.tif", rgb)
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        page = tif.pages[0]
        assert page.compression in (tifffile.COMPRESSION.NONE, tifffile.COMPRESSION.ADOBE_DEFLATE,
                                    tifffile.COMPRESSION.DEFLATE)
        assert np.array_equal(page.asarray(), rgb)  # lossless, bit depth kept, RGB order
