"""The runner end to end with fake models: frames, colours, luma, shots, references, diverse."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import torch
import pytest

from colorize.pipeline.config import RunConfig
from colorize.pipeline.errors import UsageError
from colorize.pipeline.inputs import plan_jobs
from colorize.pipeline.runner import Runner
from tests.pipeline.fakes import decode_planes, decode_rgb, make_clip, make_still


def _run(inputs, output=None, events=None, **cfg):
    runner = Runner(RunConfig(**cfg), on_event=(events.append if events is not None else None))
    jobs = plan_jobs([Path(p) for p in inputs], Path(output) if output else None, cfg.get("codec"))
    return runner, list(runner.run(jobs))


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*partial*"))


def test_colourizes_keeps_frames_audio_and_luma(tmp_path, register_fake):
    built = register_fake("fake", delay=2)
    clip = make_clip(tmp_path / "film.mp4", frames=10, width=64, height=48)
    events = []
    runner, [res] = _run([clip], model="fake", device="cpu", events=events)
    assert res.status == "done" and res.frames == 10, res.error
    out = tmp_path / "film_colorized.mp4"
    assert res.output == out and out.exists()
    assert built[0].pushed == list(range(10)) and len(built) == 1
    assert built[0].shapes[0] == (1, 32, 48)  # short side = the render size (32), aspect kept
    # Colour went in: the fixed orange ab gives r > g > b, and luma kept within codec loss.
    rgb_out = decode_rgb(out)
    assert len(rgb_out) == 10
    mid = rgb_out[5][10:38, 10:54].reshape(-1, 3).mean(0)
    assert mid[0] > mid[1] + 10 > mid[2] + 10
    y_in = [p[0].astype(int) for p in decode_planes(clip)]
    y_out = [p[0].astype(int) for p in decode_planes(out)]
    assert max(np.abs(a - b).mean() for a, b in zip(y_in, y_out)) < 1.5
    with av.open(str(out)) as c:
        assert [s.type for s in c.streams] == ["video", "audio"]
    side = json.loads((tmp_path / "film_colorized.mp4.colorize.json").read_text())
    assert side["model"]["name"] == "fake" and side["model"]["weights_sha256"] == "f" * 64
    assert side["frames"] == 10 and side["probe"]["width"] == 64 and side["device"]["name"] == "cpu"
    assert side["colorize"]["version"] and side["options"]["model"] == "fake"
    assert set(side["timings"]) >= {"model_s", "decode_wait_s", "encode_s", "total_s"}
    assert _leftovers(tmp_path) == []
    kinds = [type(e).__name__ for e in events]
    assert kinds[:2] == ["BatchStarted", "FileStarted"] and kinds[-1] == "FileFinished"
    assert kinds.count("FrameDone") == 10


def test_precision_reaches_the_model_and_the_sidecar(tmp_path, register_fake):
    built = register_fake("fake")
    clip = make_clip(tmp_path / "film.mp4", frames=3, width=64, height=48)
    _, [res] = _run([clip], model="fake", device="cpu", precision="bf16")
    assert res.status == "done", res.error
    assert built[0].built_dtype == torch.bfloat16
    side = json.loads((tmp_path / "film_colorized.mp4.colorize.json").read_text())
    assert side["device"]["dtype"] == "bfloat16" and side["options"]["precision"] == "bf16"
    _, [res] = _run([clip], model="fake", device="cpu", overwrite=True)
    assert built[1].built_dtype == torch.float32


def test_scene_cut_flushes_and_resets(tmp_path, register_fake):
    built = register_fake("fake", delay=3)
    clip = make_clip(tmp_path / "cut.mkv", frames=12, cut_at=6, audio=False)
    _, [res] = _run([clip], model="fake", device="cpu")
    assert res.status == "done" and res.frames == 12, res.error
    m = built[0]
    assert m.resets_at == [0, 6]  # once at the start of the file, once at the cut (after 6 pushes)
    side = json.loads(Path(str(res.output) + ".colorize.json").read_text())
    assert [s["first_frame"] for s in side["shots"]] == [0, 6]


def test_references_chosen_per_shot_and_used(tmp_path, register_fake):
    built = register_fake("fakeref", needs_reference=True)
    clip = make_clip(tmp_path / "two.mp4", frames=12, cut_at=6, audio=False)
    dark = make_still(tmp_path / "dark_red.png", rgb=(150, 30, 25))
    bright = make_still(tmp_path / "bright_blue.png", rgb=(170, 210, 255))
    _, [res] = _run([clip], model="fakeref", device="cpu", references=(str(dark), str(bright)))
    assert res.status == "done", res.error
    assert [(s["first_frame"], Path(s["reference"]).name) for s in res.shots] == [
        (0, "dark_red.png"), (6, "bright_blue.png")]
    assert all(s["reason"] == "best match" for s in res.shots)
    rgb = decode_rgb(res.output)
    first, last = rgb[2].reshape(-1, 3).mean(0), rgb[10].reshape(-1, 3).mean(0)
    assert first[0] > first[2] + 15  # reddish shot
    assert last[2] > last[0] + 15  # bluish shot
    side = json.loads(Path(str(res.output) + ".colorize.json").read_text())
    assert {Path(r["path"]).name for r in side["references"]} == {"dark_red.png", "bright_blue.png"}
    assert all(len(r["sha256"]) == 64 for r in side["references"])
    assert len(built[0].references) == 2


def test_time_range_reference_wins_and_starts_a_shot(tmp_path, register_fake):
    register_fake("fakeref", needs_reference=True)
    clip = make_clip(tmp_path / "one.mp4", frames=10, audio=False)
    dark = make_still(tmp_path / "dark.png", rgb=(150, 30, 25))
    bright = make_still(tmp_path / "bright.png", rgb=(170, 210, 255))
    _, [res] = _run([clip], model="fakeref", device="cpu",
                    references=(f"{bright}@0-4", f"{dark}"))
    assert res.status == "done", res.error
    assert [(s["first_frame"], Path(s["reference"]).name, s["reason"]) for s in res.shots] == [
        (0, "bright.png", "time range"), (4, "dark.png", "only reference")]


def test_diverse_pick_saturation_keeps_the_most_saturated(tmp_path, register_fake):
    register_fake("fakediv", diverse=True)
    clip = make_clip(tmp_path / "d.mp4", frames=4, audio=False)
    _, [res] = _run([clip], model="fakediv", device="cpu", diverse=3, pick="saturation")
    assert res.status == "done", res.error
    assert res.picked == 2 and res.saturations[0] < res.saturations[1] < res.saturations[2]
    produced = sorted(p.name for p in tmp_path.iterdir())
    assert produced == ["d.mp4", "d_colorized.mp4", "d_colorized.mp4.colorize.json"]
    # the kept file is the most saturated candidate: full FAKE_AB strength
    sat = decode_rgb(res.output)[2].astype(float)
    assert (sat.max(-1) - sat.min(-1)).mean() > 30


def test_diverse_pick_all_writes_every_candidate_and_a_contact_sheet(tmp_path, register_fake):
    import cv2

    register_fake("fakediv", diverse=True)
    clip = make_clip(tmp_path / "d.mp4", frames=6, audio=False)
    _, [res] = _run([clip], model="fakediv", device="cpu", diverse=3, pick="all")
    assert res.status == "done", res.error
    names = {p.name for p in res.outputs}
    assert {"d_colorized_0.mp4", "d_colorized_1.mp4", "d_colorized_2.mp4", "d_colorized_contact.png"} <= names
    chroma = []
    for i in range(3):
        frames = decode_rgb(tmp_path / f"d_colorized_{i}.mp4")
        assert len(frames) == 6
        f = frames[3].astype(float)
        chroma.append((f.max(-1) - f.min(-1)).mean())
    assert chroma[0] < chroma[1] < chroma[2]
    sheet = cv2.imread(str(tmp_path / "d_colorized_contact.png"))
    assert sheet.shape[0] >= 120 * 2 and sheet.shape[1] > 4 * 120  # >= 2 rows, grey + 3 candidates


def test_pick_all_result_names_the_files_written_and_the_sheet_is_labelled(tmp_path, register_fake):
    import cv2

    from colorize.pipeline.diverse import LABEL_H

    register_fake("fakediv", diverse=True)
    clip = make_clip(tmp_path / "d.mp4", frames=4, audio=False)
    _, [res] = _run([clip], model="fakediv", device="cpu", diverse=3, pick="all")
    files = [tmp_path / f"d_colorized_{i}.mp4" for i in range(3)]
    assert res.status == "done" and list(res.candidates) == files
    rec = res.as_json()
    assert rec["output"] == [str(f) for f in files] and all(f.exists() for f in files)
    assert rec["picked"] is None and len(rec["saturations"]) == 3
    assert [p.name for p in res.media] == [f.name for f in files] + ["d_colorized_contact.png"]
    # The sheet opens with a label strip: white, with dark text over each of the 4 columns.
    sheet = cv2.imread(str(tmp_path / "d_colorized_contact.png"))
    strip = sheet[:LABEL_H].min(-1)
    columns = np.array_split(strip, 4, axis=1)
    assert (strip > 200).mean() > 0.7 and all((c < 100).any() for c in columns)
    # Run again: skipped, and the result still names the candidates, not the set's base name.
    _, [again] = _run([clip], model="fakediv", device="cpu", diverse=3, pick="all")
    assert again.status == "skipped" and again.as_json()["output"] == [str(f) for f in files]


def test_pick_all_needs_diverse():
    with pytest.raises(ValueError, match="diverse"):
        RunConfig(pick="all")


def test_batch_total_counts_only_inputs_that_will_run(tmp_path, register_fake):
    register_fake("fake")
    src = tmp_path / "reels"
    src.mkdir()
    make_clip(src / "a.mp4", frames=3, audio=False)
    make_clip(src / "b.mp4", frames=5, audio=False)
    (src / "broken.mov").write_bytes(b"not a film at all")
    (src / "b_colorized.mp4").write_bytes(b"already there")
    events = []
    _run([src], model="fake", device="cpu", events=events)
    [batch] = [e for e in events if type(e).__name__ == "BatchStarted"]
    starts = {e.input.name: e.will_run for e in events if type(e).__name__ == "FileStarted"}
    assert batch.files == 3 and batch.frames == 3  # only a.mp4: b is skipped, broken.mov unreadable
    assert starts == {"a.mp4": True, "b.mp4": False, "broken.mov": False}


def test_interrupt_leaves_nothing_half_written(tmp_path, register_fake):
    register_fake("fake", interrupt_at=5)
    clip = make_clip(tmp_path / "film.mp4", frames=10)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(KeyboardInterrupt):
        _run([clip], model="fake", device="cpu")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_batch_folder_mirrors_skips_and_survives_a_failure(tmp_path, register_fake):
    register_fake("fake")
    src = tmp_path / "reels"
    (src / "sub").mkdir(parents=True)
    make_clip(src / "a.mp4", frames=3, audio=False)
    make_clip(src / "sub" / "b.mkv", frames=3, audio=False)
    (src / "sub" / "broken.mov").write_bytes(b"not a film at all")
    (src / "notes.txt").write_text("ignored")
    out = tmp_path / "out"
    _, results = _run([src], output=out, model="fake", device="cpu")
    status = {r.input.name: r.status for r in results}
    assert status == {"a.mp4": "done", "b.mkv": "done", "broken.mov": "error"}
    assert (out / "a_colorized.mp4").exists() and (out / "sub" / "b_colorized.mkv").exists()
    assert next(r for r in results if r.status == "error").error
    # second run: existing outputs are skipped; outputs inside the source folder are not inputs
    _, again = _run([src], output=out, model="fake", device="cpu")
    assert {r.input.name: r.status for r in again}["a.mp4"] == "skipped"
    _, forced = _run([src], output=out, model="fake", device="cpu", overwrite=True)
    assert {r.input.name: r.status for r in forced}["a.mp4"] == "done"


def test_still_image(tmp_path, register_fake):
    register_fake("fake")
    still = make_still(tmp_path / "photo.png", rgb=(120, 120, 120), size=(50, 70))
    _, [res] = _run([still], model="fake", device="cpu")
    assert res.status == "done" and res.frames == 1, res.error
    import cv2

    img = cv2.imread(str(tmp_path / "photo_colorized.png"))[..., ::-1].astype(int)
    assert img.shape == (50, 70, 3) and img[..., 0].mean() > img[..., 2].mean() + 10


def test_usage_errors(tmp_path, register_fake):
    register_fake("fake")
    register_fake("fakeref", needs_reference=True)
    clip = make_clip(tmp_path / "film.mp4", frames=2, audio=False)
    with pytest.raises(UsageError, match="needs a colour reference"):
        Runner(RunConfig(model="fakeref", device="cpu"))
    with pytest.raises(UsageError, match="does not take references"):
        Runner(RunConfig(model="fake", device="cpu", references=(str(clip),)))
    with pytest.raises(UsageError, match="diverse"):
        Runner(RunConfig(model="fake", device="cpu", diverse=2))
    with pytest.raises(UsageError, match="unknown model"):
        Runner(RunConfig(model="no-such-model", device="cpu"))
    with pytest.raises(UsageError, match="is the input itself"):
        plan_jobs([clip], clip, None)


def test_disk_full_mid_film_is_an_error_and_leaves_nothing(tmp_path, register_fake, monkeypatch):
    import errno

    import colorize.io as cio

    register_fake("fake")
    clip = make_clip(tmp_path / "film.mp4", frames=8, audio=True)
    real_write = cio.MediaWriter.write
    calls = {"n": 0}

    def full_disk(self, src, ab, l=None):
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, src, ab, l)

    monkeypatch.setattr(cio.MediaWriter, "write", full_disk)
    before = sorted(p.name for p in tmp_path.iterdir())
    _, [res] = _run([clip], model="fake", device="cpu")
    assert res.status == "error" and "No space left" in res.error
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_rotated_film_reaches_the_model_upright(tmp_path, register_fake, monkeypatch):
    """A phone clip stored landscape with a 90-degree display matrix: the model sees it portrait,
    and the chroma it returns is turned back onto the stored frame."""
    import dataclasses

    import colorize.pipeline.inputs as inputs_mod

    built = register_fake("fake")
    clip = make_clip(tmp_path / "film.mp4", frames=3, width=96, height=64, audio=False)
    real_plan = inputs_mod.plan_jobs

    def rotated(*a, **k):
        return [dataclasses.replace(j, info=dataclasses.replace(j.info, rotation=-90)) for j in real_plan(*a, **k)]

    runner = Runner(RunConfig(model="fake", device="cpu", render_size=32))
    [res] = list(runner.run(rotated([clip], None, None)))
    assert res.status == "done", res.error
    assert built[0].shapes[0] == (1, 48, 32)  # portrait for the model (display orientation)
    assert decode_rgb(res.output)[0].shape == (64, 96, 3)  # stored orientation kept
