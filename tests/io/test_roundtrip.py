"""Video in, video out: everything but the chroma must survive the writer."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from colorize.color.lab import rgb_to_lab
from colorize.io import EncodeOptions, MediaWriter, iter_frames, output_path_for, probe
from colorize.io.decode import frame_to_rgb
from tests.media import CREATION_TIME, make_clip, read_packets, read_video

AB = (30.0, -20.0)


def colorize_file(src, dst, options=EncodeOptions(), ab_value=AB):
    info = probe(src)
    with MediaWriter(dst, info, options) as writer:
        for frame in iter_frames(src, info):
            ab = np.empty((info.height, info.width, 2), np.float32)
            ab[...] = ab_value
            writer.write(frame, ab)
    return info, probe(dst)


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)


@pytest.mark.parametrize("container", ["mp4", "mkv", "mov"])
def test_default_h264_keeps_timing_metadata_and_streams(clips, container, tmp_path):
    src = clips[container]
    dst = output_path_for(src, probe(src), tmp_path, None)
    assert dst.suffix == f".{container}" and dst.name == f"film_colorized.{container}"
    before, after = colorize_file(src, dst)

    # Picture geometry and colour tags.
    assert (after.width, after.height, after.sar) == (before.width, before.height, before.sar)
    assert after.pix_fmt == "yuv420p" and after.codec == "h264"
    for tag in ("colorspace", "color_primaries", "color_trc", "color_range"):
        assert getattr(after, tag) == getattr(before, tag)
    assert after.time_base == before.time_base
    # Container metadata.
    assert after.metadata["title"] == "A film title"
    assert after.metadata["creation_time"] == CREATION_TIME
    assert [(s.kind, s.codec, s.language) for s in after.streams] == [
        (s.kind, s.codec, s.language) for s in before.streams
    ]

    # Every frame, every (VFR) timestamp.
    t_in, y_in, _ = read_video(src)
    t_out, y_out, _ = read_video(dst)
    assert len(t_out) == len(t_in) == 12
    assert t_out == t_in
    assert len(set(np.diff([float(t) for t in t_in]).round(4))) > 2  # really variable frame rate

    # Luma differs only by codec loss (CRF 17).
    assert min(psnr(a, b) for a, b in zip(y_in, y_out)) > 38

    # Audio and subtitle packets byte-identical, with their timestamps.
    for kind in ("audio", "subtitle"):
        packets_in, packets_out = read_packets(src, kind), read_packets(dst, kind)
        assert packets_in and all(packets_in)
        assert packets_out == packets_in


def test_constant_frame_rate_is_kept(tmp_path):
    src = make_clip(tmp_path / "cfr.mp4", "mp4", frames=10, audio_tracks=1)
    before, after = colorize_file(src, tmp_path / "out.mp4")
    assert after.fps == before.fps == 25
    assert after.frames == 10


def test_lossless_ffv1_keeps_y_bit_identical(clips, tmp_path):
    src = clips["mkv"]
    dst = output_path_for(src, probe(src), tmp_path, "ffv1")
    assert dst.suffix == ".mkv"
    before, after = colorize_file(src, dst, EncodeOptions(codec="ffv1"))
    assert after.codec == "ffv1" and after.pix_fmt == before.pix_fmt
    t_in, y_in, _ = read_video(src)
    t_out, y_out, _ = read_video(dst)
    assert t_out == t_in
    assert all(np.array_equal(a, b) for a, b in zip(y_in, y_out))
    for kind in ("audio", "subtitle"):
        assert read_packets(dst, kind) == read_packets(src, kind)


def test_lossless_10bit_keeps_y_bit_identical(tmp_path):
    src = make_clip(tmp_path / "ten.mkv", "mkv", codec="ffv1", pix_fmt="yuv420p10le", frames=3)
    before, after = colorize_file(src, tmp_path / "ten_out.mkv", EncodeOptions(codec="ffv1"))
    assert after.pix_fmt == "yuv420p10le" and after.bit_depth == 10
    _, y_in, _ = read_video(src)
    _, y_out, _ = read_video(tmp_path / "ten_out.mkv")
    assert y_in[0].dtype == np.uint16 and y_in[0].max() > 255
    assert all(np.array_equal(a, b) for a, b in zip(y_in, y_out))


def _flat_ab(path, info):
    """Mean and spread of ab over the flat left band of every frame (away from edges/texture)."""
    import av

    out = []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            rgb = frame_to_rgb(f, info).astype(np.float32) / (65535.0 if info.bit_depth > 8 else 255.0)
            lab = rgb_to_lab(torch.from_numpy(rgb).permute(2, 0, 1))
            h, w = info.height, info.width
            region = lab[1:, 2 : h // 3 - 2, 2 : w // 2 - 4]
            out.append(region.reshape(2, -1))
    return torch.cat(out, dim=1)


@pytest.mark.parametrize("codec", ["ffv1", "libx264"])
def test_chroma_really_changes_to_the_given_ab(clips, tmp_path, codec):
    src = clips["mkv"]
    info_in = probe(src)
    grey = _flat_ab(src, info_in)
    assert grey.abs().max() < 1.5  # the source is black and white
    for ab in ((30.0, -20.0), (-25.0, 35.0)):
        dst = tmp_path / f"c_{codec}_{ab[0]}.mkv"
        _, info_out = colorize_file(src, dst, EncodeOptions(codec=codec), ab_value=ab)
        got = _flat_ab(dst, info_out)
        err = (got - torch.tensor(ab).view(2, 1)).abs()
        assert err.mean() < 2.0 and err.max() < 4.0, (ab, got.mean(1))


def test_source_colour_tags_drive_the_matrix(tmp_path):
    """A BT.601 full-range source: output keeps those tags and its chroma decodes back to ab."""
    src = make_clip(tmp_path / "sd.mkv", "mkv", colorspace=6, color_range=2, frames=3, codec="ffv1")
    before, after = colorize_file(src, tmp_path / "sd_out.mkv", EncodeOptions(codec="ffv1"))
    assert (after.colorspace, after.color_range) == ("smpte170m", "pc") == (before.colorspace, before.color_range)
    got = _flat_ab(tmp_path / "sd_out.mkv", after)
    assert (got - torch.tensor(AB).view(2, 1)).abs().mean() < 2.0


@pytest.mark.parametrize("container", ["mov", "mkv", "mp4"])
def test_timecode_and_chapters_are_kept(tmp_path, container):
    import av

    src = make_clip(tmp_path / f"tc.{container}", container, frames=6, timecode="10:00:00:00", chapters=2,
                    subtitles=True)
    dst = tmp_path / f"tc_out.{container}"
    before, after = colorize_file(src, dst)

    def timecode(info):
        tags = {**info.metadata, **info.video_metadata}
        return {k.lower(): v for k, v in tags.items()}.get("timecode")

    assert timecode(before) == timecode(after) == "10:00:00:00"
    # QuickTime keeps timecode and chapters in tracks of their own: rebuilt once, not copied twice.
    assert [s.kind for s in after.streams] == [s.kind for s in before.streams]

    def chapters(path):
        with av.open(str(path)) as c:
            return [(ch["start"] * ch["time_base"], ch["metadata"].get("title")) for ch in c.chapters()]

    assert chapters(src) == chapters(dst) and len(chapters(dst)) == 2
    assert read_packets(dst, "subtitle") == read_packets(src, "subtitle")


def test_ass_subtitles_and_font_attachment_in_matroska(tmp_path):
    import av

    font = bytes(range(256)) * 8
    src = make_clip(tmp_path / "ass.mkv", "mkv", frames=8, subtitles=True, subtitle_codec="ass", attachment=font,
                    audio_tracks=1)
    dst = tmp_path / "ass_out.mkv"
    before, after = colorize_file(src, dst)
    assert [s.codec for s in after.streams if s.kind == "subtitle"] == [
        s.codec for s in before.streams if s.kind == "subtitle"] == ["ssa"]  # Matroska's S_TEXT/SSA
    assert read_packets(dst, "subtitle") == read_packets(src, "subtitle")
    assert read_packets(dst, "audio") == read_packets(src, "audio")
    with av.open(str(src)) as a, av.open(str(dst)) as b:
        (att,) = [s for s in b.streams if s.type == "attachment"]
        assert bytes(att.data) == font and att.name == "ArchiveSans.ttf"


@pytest.mark.parametrize("pix_fmt,expect", [("gray", "yuv420p"), ("yuv444p", "yuv444p"), ("yuv422p", "yuv422p")])
def test_other_pixel_formats_and_odd_sizes_keep_luma(tmp_path, pix_fmt, expect):
    src = make_clip(tmp_path / f"{pix_fmt}.mkv", "mkv", size=(67, 39), frames=3, codec="ffv1", pix_fmt=pix_fmt,
                    color_range=2 if pix_fmt == "gray" else 1)
    dst = tmp_path / f"{pix_fmt}_out.mkv"
    before, after = colorize_file(src, dst, EncodeOptions(codec="ffv1"))
    assert after.pix_fmt == expect and (after.width, after.height) == (67, 39)
    _, y_in, _ = read_video(src)
    _, y_out, _ = read_video(dst)
    assert all(np.array_equal(a, b) for a, b in zip(y_in, y_out))
    got = _flat_ab(dst, after)
    assert (got - torch.tensor(AB).view(2, 1)).abs().mean() < 2.0


def test_raw_stream_without_timestamps_gets_a_constant_rate(tmp_path):
    import av

    path = tmp_path / "camera.h264"
    with av.open(str(path), "w", format="h264") as out:  # an elementary stream: no container timestamps
        v = out.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20 * i, np.uint8), format="rgb24")
            frame.pts = i
            for p in v.encode(frame):
                out.mux(p)
        for p in v.encode(None):
            out.mux(p)
    info = probe(path)
    dst = output_path_for(path, info, tmp_path / "camera_colorized.mkv")
    colorize_file(path, dst)
    times, _, _ = read_video(dst)
    assert times == [i / info.fps for i in range(10)]


def test_streams_are_interleaved_by_time(tmp_path):
    """Audio is muxed alongside the video it belongs to, not appended at the end of the file."""
    import av

    # Longer than the muxer's own 10 s interleaving buffer, so only our feeding order can do it.
    src = make_clip(tmp_path / "long.mkv", "mkv", size=(32, 24), frames=300, audio_tracks=1, subtitles=True)
    dst = tmp_path / "long_out.mkv"
    colorize_file(src, dst)
    with av.open(str(dst)) as c:
        order = [(p.stream.type, float(p.dts * p.time_base)) for p in c.demux() if p.dts is not None]
    latest = float("-inf")
    for kind, t in order:
        assert t > latest - 0.5, (kind, t, latest)  # the muxer's own interleaving window, no more
        latest = max(latest, t)
    assert {k for k, _ in order} == {"video", "audio", "subtitle"}


def test_interlaced_source_stays_interlaced(tmp_path):
    import av

    src = make_clip(tmp_path / "pal.mkv", "mkv", size=(64, 48), frames=6, interlaced=True, audio_tracks=1)
    info = probe(src)
    assert info.interlaced and info.field_order == "tt"
    for codec in ("libx264", "ffv1"):
        dst = tmp_path / f"pal_{codec}.mkv"
        _, after = colorize_file(src, dst, EncodeOptions(codec=codec))
        assert after.field_order == "tt"  # the container's field-order tag
        if codec == "libx264":  # and x264 codes fields (FFV1 takes the flag from frames PyAV can't set)
            with av.open(str(dst)) as c:
                assert all(f.interlaced_frame for f in c.decode(video=0))


def test_interlaced_chroma_is_subsampled_per_field(tmp_path):
    """Top and bottom fields are two moments in time: their colours must not be averaged."""
    import av

    src = make_clip(tmp_path / "pal.mkv", "mkv", size=(64, 48), frames=2, interlaced=True)
    info = probe(src)
    dst = tmp_path / "pal_out.mkv"
    with MediaWriter(dst, info, EncodeOptions(codec="ffv1")) as writer:
        for frame in iter_frames(src, info):
            ab = np.empty((info.height, info.width, 2), np.float32)
            ab[0::2] = (30.0, -20.0)  # top field
            ab[1::2] = (-25.0, 35.0)  # bottom field
            writer.write(frame, ab)
    with av.open(str(dst)) as c:
        f = next(c.decode(video=0))
        cb = np.frombuffer(f.planes[1], np.uint8).reshape(f.planes[1].height, -1)[:, : f.planes[1].width]
    top, bottom = cb[0::2].astype(float).mean(), cb[1::2].astype(float).mean()
    # Cb falls with b: the top field (b = -20) is well above the bottom field (b = +35).
    assert top - bottom > 15, (top, bottom)


@pytest.mark.parametrize("crf,preset,tune", [(17, "medium", None), (22, "veryfast", "grain")])
def test_encoder_settings_reach_x264(tmp_path, crf, preset, tune):
    import av

    src = make_clip(tmp_path / "s.mkv", "mkv", frames=3)
    dst = tmp_path / "s_out.mkv"
    colorize_file(src, dst, EncodeOptions(crf=crf, preset=preset, tune=tune))
    with av.open(str(dst)) as c:
        first = bytes(next(p for p in c.demux(video=0) if p.size))
    settings = first[first.index(b"x264 - core"):].split(b"options: ")[1].decode("latin1").split()
    assert f"crf={crf}.0" in settings
    assert ("subme=7" in settings) == (preset == "medium")
    assert ("deadzone=6,6" in settings) == (tune == "grain")  # --tune grain lowers the deadzones


@pytest.mark.parametrize("pix_fmt,plane", [("yuv420p", (20, 34)), ("yuv422p", (39, 34)), ("yuv444p", None)])
def test_chroma_at_the_planes_own_size_gives_the_same_file(tmp_path, pix_fmt, plane):
    """A writer with subsampled chroma also takes ab and L at the chroma planes' size (what the
    pipeline hands it): the same picture as full-size ab that is uniform within each chroma
    sample, whose L the writer itself area-resamples the same way. 4:4:4 takes full size only."""
    import av

    from colorize.color.merge import l_numpy, resize_l

    src = make_clip(tmp_path / f"{pix_fmt}.mkv", "mkv", size=(67, 39), frames=3, codec="ffv1", pix_fmt=pix_fmt)
    info = probe(src)
    planes = []
    for mode in ("full", "plane"):
        dst = tmp_path / f"{pix_fmt}_{mode}.mkv"
        gen = np.random.default_rng(3)
        if plane is None:
            writer = MediaWriter(dst, info, EncodeOptions(codec="ffv1"))
            assert writer.chroma_size is None
            writer.abort()
            return
        with MediaWriter(dst, info, EncodeOptions(codec="ffv1")) as writer:
            assert writer.chroma_size == plane
            for frame in iter_frames(src, info):
                ab = (gen.standard_normal(2) * 25).astype(np.float32)
                if mode == "full":
                    writer.write(frame, np.broadcast_to(ab, (info.height, info.width, 2)).copy())
                else:
                    l_p = resize_l(torch.from_numpy(l_numpy(frame.rgb))[None], plane)[0].numpy()
                    writer.write(frame, np.broadcast_to(ab, (*plane, 2)).copy(), l_p)
        with av.open(str(dst)) as c:
            planes.append([[bytes(p) for p in f.planes] for f in c.decode(video=0)])
    assert len(planes[0]) == 3 and planes[0] == planes[1]
    assert planes[0][0][1] != planes[0][1][1]  # the frames really got different colours


def test_chroma_at_plane_size_needs_l_and_not_for_interlaced(tmp_path):
    src = make_clip(tmp_path / "p.mkv", "mkv", size=(64, 48), frames=1, codec="ffv1")
    info = probe(src)
    writer = MediaWriter(tmp_path / "o.mkv", info, EncodeOptions(codec="ffv1"))
    assert writer.chroma_size == (24, 32)
    with pytest.raises(ValueError, match="24 x 32 x 2 with L"):
        writer.write(next(iter_frames(src, info)), np.zeros((24, 32, 2), np.float32))  # no L given
    assert not writer.temp_path.exists()  # a bad write aborts: nothing half-written
    pal = make_clip(tmp_path / "pal.mkv", "mkv", size=(64, 48), frames=1, interlaced=True)
    writer = MediaWriter(tmp_path / "pal_out.mkv", probe(pal), EncodeOptions(codec="ffv1"))
    assert writer.chroma_size is None  # each field is subsampled on its own: full size only
    writer.abort()
    image = tmp_path / "still.png"
    import cv2

    cv2.imwrite(str(image), np.full((8, 8, 3), 90, np.uint8))
    writer = MediaWriter(tmp_path / "still_out.png", probe(image))
    assert writer.chroma_size is None
    writer.abort()
