import json
import math

import pytest
import torch

from colorize.evaluation import EvalError, cli_eval, evaluate, find_clips, format_report, quick_eval
from colorize.color.lab import lab_to_rgb
from colorize.evaluation.runner import grey_rgb, render_shape
from tests.evaluation.fakes import FakeColorizer, decode_lab



def _truths(clip_dir):
    return {p.name: decode_lab(p) for p in find_clips([clip_dir])}


def _oracle(clip_dir, **kw):
    """A fake that returns each clip's true ab; it follows the clip order through reset()."""
    truths = _truths(clip_dir)
    names = sorted(truths)
    fake = FakeColorizer(truth=truths[names[0]], **kw)
    order = iter(names)
    original_reset = fake.reset

    def reset():  # the runner resets before each clip (and after); follow the clip order
        if fake.resets % 2 == 0:
            fake.truth = truths[next(order)]
        original_reset()

    fake.reset = reset
    return fake


def test_grey_rgb_is_lab_with_zero_chroma():
    l = torch.linspace(0, 100, 101).view(1, 1, 1, 101)
    ref = lab_to_rgb(torch.cat((l, torch.zeros(1, 2, 1, 101)), 1))
    assert torch.allclose(grey_rgb(l), ref, atol=2e-5)


def test_render_shape():
    assert render_shape(480, 854, 256, 32) == (256, 448)
    assert render_shape(854, 480, 256, 32) == (448, 256)
    assert render_shape(48, 64, 48, 16) == (48, 64)
    assert render_shape(10, 10, 3, 16) == (16, 16)
    assert render_shape(40, 60, 256, 32) == (64, 96)  # small clips: never upscaled past a multiple


def test_true_colours_score_high_and_stable(clip_dir):
    report = evaluate(_oracle(clip_dir), find_clips([clip_dir]))
    assert [c.name for c in report.clips] == ["a.mp4", "b.mp4"]
    assert [c.frames for c in report.clips] == [6, 5]
    for c in report.clips:
        assert c.psnr_output > 45 and c.psnr_gain > 20
        assert c.colourfulness_ratio == pytest.approx(1.0, abs=0.01)
        assert c.flicker_ratio == pytest.approx(1.0, abs=0.01)
        assert c.flicker_ratio_relative == pytest.approx(1.0, abs=0.01)
        assert c.accuracy > 0.999
        assert c.fps > 0
        assert len(c.psnr_per_frame) == c.frames
    mean = report.mean()
    assert mean["psnr_gain"] == pytest.approx(sum(c.psnr_gain for c in report.clips) / 2)
    assert mean["frames"] == 11


def test_half_strength_colours_flicker_half_but_not_relatively(clip_dir):
    fake = _oracle(clip_dir)
    fake.scale = 0.5
    for c in evaluate(fake, find_clips([clip_dir])).clips:
        assert c.flicker_ratio == pytest.approx(0.5, abs=0.01)
        assert c.flicker_ratio_relative == pytest.approx(1.0, abs=0.01)
        assert c.colourfulness_ratio < 0.7


def test_zero_chroma_equals_the_grey_input(clip_dir):
    fake = FakeColorizer(truth=None)
    report = evaluate(lambda: fake, find_clips([clip_dir]))
    for c in report.clips:
        assert c.psnr_output == pytest.approx(c.psnr_grey, abs=1e-3)
        assert c.psnr_grey < 30  # the clip is colourful: grey is far from it
        assert c.colourfulness_ratio == pytest.approx(0.0, abs=1e-3)
        assert c.flicker_output == 0.0 and c.flicker_original > 0
        assert math.isnan(c.flicker_ratio_relative)
        assert c.accuracy < 0.5
    assert fake.pushed_shapes[0] == (1, 48, 64)  # default render size, multiple of 16


def test_render_resize_and_upsampling_cost_little(clip_dir):
    full = evaluate(_oracle(clip_dir), find_clips([clip_dir])).mean()
    small = evaluate(_oracle(clip_dir, render=32), find_clips([clip_dir])).mean()
    assert 25 < small["psnr_output"] < full["psnr_output"]


def test_delayed_outputs_give_the_same_figures(clip_dir):
    clips = find_clips([clip_dir])
    now = evaluate(_oracle(clip_dir), clips).as_dict()
    late = evaluate(_oracle(clip_dir, delay=3), clips).as_dict()
    for a, b in zip(now["clips"], late["clips"]):
        assert a["psnr_per_frame"] == b["psnr_per_frame"]
        assert a["flicker_ratio"] == pytest.approx(b["flicker_ratio"])


def test_max_frames(clip_dir):
    report = evaluate(FakeColorizer(), find_clips([clip_dir]), max_frames=3)
    assert [c.frames for c in report.clips] == [3, 3]
    single = evaluate(FakeColorizer(), find_clips([clip_dir]), max_frames=1)
    assert math.isnan(single.clips[0].flicker_ratio)  # no frame pair: undefined, not 0 or inf
    assert single.as_dict()["mean"]["flicker_ratio"] is None


def test_first_frame_mode_gives_frame_zero_as_reference(clip_dir):
    clips = find_clips([clip_dir])
    with pytest.raises(EvalError, match="needs a reference"):
        evaluate(FakeColorizer(needs_reference=True), clips)
    fake = FakeColorizer(needs_reference=True)
    report = evaluate(fake, clips, ref_mode="first-frame")
    assert len(fake.references) == 2
    frame0 = decode_lab(clips[0])[0]
    assert fake.references[0].shape == (1, 3, 48, 64)
    assert torch.allclose(fake.references[0], frame0, atol=1e-4)
    c = report.clips[0]
    assert c.scored_frames == c.frames - 1 and len(c.psnr_per_frame) == c.frames
    buckets = report.psnr_over_time()
    assert [(b["first"], b["last"], b["frames"]) for b in buckets] == [(0, 0, 2), (1, 5, 9)]
    grey0 = (report.clips[0].psnr_grey_per_frame[0] + report.clips[1].psnr_grey_per_frame[0]) / 2
    assert buckets[0]["psnr_grey"] == pytest.approx(grey0)
    assert "PSNR gain over time" in format_report(report)
    # Grey output is far from the reference's palette; the original is close to its own frame 0.
    assert c.reference_distance_original < 0.3 < c.reference_distance_output


def test_reference_image_scores_faithfulness(clip_dir, tmp_path):
    import cv2

    from tests.evaluation.fakes import colour_frame

    ref = tmp_path / "ref.png"
    cv2.imwrite(str(ref), cv2.cvtColor(colour_frame(0, 64, 48), cv2.COLOR_RGB2BGR))
    report = evaluate(_oracle(clip_dir), find_clips([clip_dir]), reference=ref)
    grey = evaluate(FakeColorizer(), find_clips([clip_dir]), reference=ref)
    assert report.mean()["reference_distance_output"] < grey.mean()["reference_distance_output"]
    assert any("only used to score" in n for n in report.notes)
    with pytest.raises(EvalError, match="cannot read"):
        evaluate(FakeColorizer(), find_clips([clip_dir]), reference=tmp_path / "missing.png")


def test_report_table_and_json(clip_dir):
    report = evaluate(FakeColorizer(), find_clips([clip_dir]))
    text = format_report(report)
    assert "a.mp4" in text and "b.mp4" in text and "mean" in text
    d = report.as_dict()
    json.dumps(d, allow_nan=False)
    assert d["model"] == "fake" and len(d["clips"]) == 2
    assert d["clips"][0]["flicker_ratio"] == 0.0


def test_undefined_ratios_are_none_in_json(tmp_path):
    # A grey clip: colourfulness of the original is 0, so the ratio is undefined, not a crash.
    import av
    import numpy as np

    path = tmp_path / "grey.mp4"
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=24)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        for i in range(3):
            img = np.full((32, 32, 3), 100 + i, np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    report = evaluate(FakeColorizer(render=32), [path])
    json.dumps(report.as_dict(), allow_nan=False)


def test_bad_inputs(tmp_path):
    with pytest.raises(EvalError, match="no video clips"):
        find_clips([tmp_path])
    with pytest.raises(EvalError, match="no such file"):
        find_clips([tmp_path / "nope"])
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    with pytest.raises(EvalError):
        evaluate(FakeColorizer(), [bad])
    with pytest.raises(EvalError, match="ref_mode"):
        evaluate(FakeColorizer(), [bad], ref_mode="last-frame")


def test_frame_short_side_shrinks_the_originals(clip_dir):
    fake = FakeColorizer(render=32)
    report = evaluate(fake, find_clips([clip_dir]), max_frames=2, frame_short_side=24)
    assert [(c.width, c.height) for c in report.clips] == [(32, 24), (24, 32)]
    assert fake.pushed_shapes[0] == (1, 32, 48)  # short side 24 -> 32 (next multiple of 16), aspect kept


def test_quick_eval(clip_dir):
    out = quick_eval(_oracle(clip_dir), find_clips([clip_dir]), max_frames=4)
    assert set(out) == {"psnr_gain", "colourfulness_ratio", "flicker_ratio", "psnr_output", "fps"}
    assert out["psnr_gain"] > 20 and out["flicker_ratio"] == pytest.approx(1.0, abs=0.02)


def test_cli_eval_builds_once_and_writes_csv(clip_dir, tmp_path, monkeypatch):
    from colorize.models import registry

    built = []

    def create_model(name, device="cpu", dtype=torch.float32, weights=None, **options):
        built.append((name, str(device), weights))
        return FakeColorizer()

    monkeypatch.setattr(registry, "create_model", create_model)
    monkeypatch.setattr(registry, "get_model_info", lambda name: FakeColorizer().info)
    out_csv = tmp_path / "frames.csv"
    report = cli_eval("fake", [clip_dir], max_frames=2, out_csv=out_csv, json=True)
    assert built == [("fake", "cpu", None)]
    assert [c.frames for c in report.clips] == [2, 2]
    rows = out_csv.read_text().splitlines()
    assert rows[0] == "clip,frame,psnr_output,psnr_grey" and len(rows) == 1 + 4
    assert math.isclose(float(rows[1].split(",")[2]), report.clips[0].psnr_per_frame[0], abs_tol=1e-3)


def test_render_size_overrides_the_models_default(clip_dir):
    fake = FakeColorizer()
    report = evaluate(fake, find_clips([clip_dir]), max_frames=1, render_size=32)
    assert fake.pushed_shapes[0] == (1, 32, 48)  # the 48x64 clip at short side 32, multiple of 16
    assert (report.clips[0].render_height, report.clips[0].render_width) == (32, 48)


def _pillarbox_clip(path, frames=4, width=64, height=48, bar=12):
    import av
    import numpy as np

    from tests.evaluation.fakes import colour_frame

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "12"}
        for i in range(frames):
            img = colour_frame(i, width, height)
            img[:, :bar] = 0
            img[:, -bar:] = 0
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def test_dark_cast_of_a_navy_model_is_removed_by_the_gamut_limit(tmp_path):
    """A model that paints everything navy: the bars it would tint stay neutral in the output."""
    clip = _pillarbox_clip(tmp_path / "bars.mp4")
    fake = FakeColorizer(truth=None)
    fake._ab = lambda index, l: torch.tensor([10.0, -45.0]).view(1, 2, 1, 1).expand(1, 2, *l.shape[-2:]).clone()
    c = evaluate(fake, [clip]).clips[0]
    assert c.dark_pixels > 0
    assert c.dark_cast_original < 1.0  # the bars are black in the original too
    assert c.dark_cast_output < 0.5
    truth = evaluate(_oracle_for(clip), [clip]).clips[0]
    assert truth.dark_cast_output == pytest.approx(truth.dark_cast_original, abs=0.5)
    assert "dark" in format_report(evaluate(fake, [clip]))


def _oracle_for(clip):
    return FakeColorizer(truth=decode_lab(clip))
