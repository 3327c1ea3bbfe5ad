from dataclasses import replace
from pathlib import Path

import pytest

from colorize.io import MediaError, MediaWriter, output_path_for, probe


@pytest.mark.parametrize("container", ["mp4", "mkv", "mov"])
def test_container_is_kept_beside_the_input(clips, container):
    src = clips[container]
    assert output_path_for(src, probe(src)) == src.with_name(f"film_colorized.{container}")


def test_other_containers_become_matroska(clips):
    info = probe(clips["mkv"])
    for name in ("reel.avi", "reel.ts", "reel.MPG"):
        path = Path("/films") / name
        assert output_path_for(path, replace(info, path=path)) == Path("/films") / (Path(name).stem + "_colorized.mkv")


def test_ffv1_goes_to_matroska_unless_a_stream_does_not_fit(clips, tmp_path):
    assert output_path_for(clips["mkv"], probe(clips["mkv"]), None, "ffv1").suffix == ".mkv"
    assert output_path_for(clips["mov"], probe(clips["mov"]), None, "ffv1").suffix == ".mp4"  # mov_text: not in mkv


def test_output_folder_and_explicit_file(clips, tmp_path):
    src, info = clips["mp4"], probe(clips["mp4"])
    assert output_path_for(src, info, tmp_path) == tmp_path / "film_colorized.mp4"
    assert output_path_for(src, info, tmp_path / "master.mkv") == tmp_path / "master.mkv"


def test_unknown_encoder_and_extension(clips, tmp_path):
    with pytest.raises(MediaError, match="encoder"):
        output_path_for(clips["mp4"], probe(clips["mp4"]), None, "no-such-codec")
    with pytest.raises(MediaError, match="extension"):
        MediaWriter(tmp_path / "out.xyz", probe(clips["mp4"]))
    with pytest.raises(MediaError, match="cannot hold"):
        from colorize.io import EncodeOptions

        MediaWriter(tmp_path / "out.mov", probe(clips["mkv"]), EncodeOptions(codec="ffv1"))


def test_unicode_and_spaces_in_names(tmp_path):
    import numpy as np

    from colorize.io import iter_frames
    from tests.media import make_clip

    folder = tmp_path / "Archiv Nr. 5 — Übersee"
    folder.mkdir()
    src = make_clip(folder / "Filmrolle 3 – 日本 %d.mkv", "mkv", frames=3, audio_tracks=1)
    info = probe(src)
    dst = output_path_for(src, info)
    assert dst.name == "Filmrolle 3 – 日本 %d_colorized.mkv"
    with MediaWriter(dst, info) as writer:
        for frame in iter_frames(src, info):
            writer.write(frame, np.zeros((info.height, info.width, 2), np.float32))
    assert probe(dst).streams == info.streams
