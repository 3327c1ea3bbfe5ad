"""The default H.264 output is a function of its input: two encodes of the same frames decode to
the same pictures (x264's AVX-512 code read uninitialised memory; see colorize/io/x264.py)."""

from __future__ import annotations

import numpy as np
import pytest

from colorize.io import EncodeOptions, MediaWriter, iter_frames, probe
from colorize.io import x264
from tests.pipeline.fakes import decode_planes, make_clip


def _encode(src, info, out):
    frames = list(iter_frames(src, info))
    h, w = frames[0].rgb.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    with MediaWriter(out, info, EncodeOptions()) as writer:
        for f in frames:
            ab = np.stack([30 * np.sin(xx / 17 + f.index / 5), 40 * np.cos(yy / 13 + f.index / 7)], -1)
            writer.write(f, ab.astype(np.float32))
    return decode_planes(out)


def test_two_h264_encodes_decode_to_identical_frames(tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=60, width=320, height=240, cut_at=30, audio=False)
    info = probe(src)
    first = _encode(src, info, tmp_path / "a.mp4")
    # Leave freed memory with other contents behind, as a model run does between two encodes.
    junk = [bytearray(b"\xa5" * (1 << 20)) for _ in range(32)]
    del junk
    second = _encode(src, info, tmp_path / "b.mp4")
    assert len(first) == len(second) == 60
    for i, (a, b) in enumerate(zip(first, second)):
        for plane_a, plane_b in zip(a, b):
            assert np.array_equal(plane_a, plane_b), f"frame {i} differs"


def test_params_merge_with_interlacing_flags():
    assert x264.join_params("tff=1", ["asm=AVX2,Cache64"]) == "tff=1:asm=AVX2,Cache64"
    assert x264.join_params(None, []) is None


@pytest.mark.skipif(not x264.has_avx512(), reason="the AVX-512 path is taken only on AVX-512 CPUs")
def test_avx512_cpus_get_the_avx2_code():
    assert x264.deterministic_params() == ["asm=AVX2,Cache64"]
