from fractions import Fraction
import json

import pytest

from colorize.io import MediaInfo, probe
from tests.media import CREATION_TIME, make_clip


@pytest.mark.parametrize("container", ["mp4", "mkv", "mov"])
def test_probe_reads_everything_the_writer_keeps(clips, container):
    info = probe(clips[container])
    assert isinstance(info, MediaInfo) and not info.is_image
    assert (info.width, info.height) == (66, 38)
    assert info.sar == Fraction(4, 3)
    assert info.pix_fmt == "yuv420p" and info.bit_depth == 8 and info.codec == "h264"
    assert (info.colorspace, info.color_primaries, info.color_trc, info.color_range) == ("bt709",) * 3 + ("tv",)
    assert info.metadata["title"] == "A film title"
    assert info.metadata["creation_time"] == CREATION_TIME
    kinds = [s.kind for s in info.streams]
    assert kinds == ["video", "audio", "audio", "subtitle"]
    assert [s.language for s in info.streams if s.kind == "audio"] == ["eng", "fra"]
    assert info.rotation == 0 and info.video_index == 0
    assert info.frame_estimate == 12 or info.frames is None
    if container != "mkv":  # Matroska has no frame count in its header
        assert info.frames == 12
    json.dumps(info.as_dict())  # the provenance sidecar needs it serialisable


def test_probe_10bit(tmp_path):
    path = make_clip(tmp_path / "ten.mkv", "mkv", codec="ffv1", pix_fmt="yuv420p10le", frames=2)
    info = probe(path)
    assert info.pix_fmt == "yuv420p10le" and info.bit_depth == 10 and info.codec == "ffv1"


@pytest.mark.parametrize("container", ["mp4", "mkv", "mov"])
def test_rotation_is_read_and_kept(tmp_path, container):
    import numpy as np

    from colorize.io import EncodeOptions, MediaWriter, iter_frames

    src = make_clip(tmp_path / f"rot.{container}", container, frames=3, rotation=90)
    info = probe(src)
    assert info.rotation == 90
    out = tmp_path / f"out.{container}"
    with MediaWriter(out, info, EncodeOptions()) as writer:
        for frame in iter_frames(src, info):
            writer.write(frame, np.zeros((*frame.rgb.shape[:2], 2), np.float32))
    kept = probe(out)
    assert kept.rotation == 90 and (kept.width, kept.height) == (info.width, info.height)
