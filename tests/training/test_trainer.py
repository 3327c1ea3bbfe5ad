from dataclasses import replace
import csv
from pathlib import Path

import pytest
import torch

from colorize.training.data import ClipSampler, DataConfig, load_photos
from colorize.training.trainer import Trainer, TrainConfig
from tests.training.synthetic import write_photo_folder


def _samplers(tmp_path):
    folder = write_photo_folder(tmp_path / "photos", n=4, size=64)
    photos = load_photos([folder], short=64)
    cfg = DataConfig(size=32, window=5)
    return ClipSampler(photos, [], cfg, seed=3), ClipSampler(photos[:2], [], cfg, seed=4)


def _cfg(out, steps):
    return TrainConfig(model="lstm", data=(), out=str(out), steps=steps, batch=2, size=32,
                       warmup=2, log_every=1, eval_every=2, eval_batches=1, threads=1)


def test_sampler_is_deterministic_per_step(tmp_path):
    tr, _ = _samplers(tmp_path)
    a, b, c = tr.batch(5, 2), tr.batch(5, 2), tr.batch(6, 2)
    assert torch.equal(a.rgb, b.rgb) and torch.equal(a.flow, b.flow)
    assert not torch.equal(a.rgb, c.rgb)
    assert a.rgb.shape == (2, 5, 3, 32, 32) and a.flow.shape == (2, 4, 2, 32, 32)
    assert 0 <= a.rgb.min() and a.rgb.max() <= 1 and a.valid.mean() > 0.5


def test_synthetic_motion_flow_is_exact(tmp_path):
    """Warping frame t by the sampler's flow reproduces frame t+1 where valid."""
    from torch.nn import functional as F

    tr, _ = _samplers(tmp_path)
    batch = tr.batch(0, 2)
    prev, nxt = batch.rgb[:, 0], batch.rgb[:, 1]
    flow, valid = batch.flow[:, 0], batch.valid[:, 0]
    n, _, h, w = prev.shape
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    gx = (xs + flow[:, 0]) / (w - 1) * 2 - 1
    gy = (ys + flow[:, 1]) / (h - 1) * 2 - 1
    warped = F.grid_sample(prev, torch.stack((gx, gy), -1), align_corners=True)
    err = ((warped - nxt).abs() * valid).sum() / valid.sum() / 3
    still = ((prev - nxt).abs() * valid).sum() / valid.sum() / 3
    assert err < 0.04 and err < 0.5 * still


def test_crop_min_lets_photo_crops_zoom_in():
    """crop_min=1 always shows the whole (square) photo; a small crop_min also zooms in on parts of it."""
    import numpy as np

    half = np.zeros((96, 96, 3), np.uint8)
    half[:, :48, 0] = 255  # left half red, right half blue
    half[:, 48:, 2] = 255

    def minority_share(crop_min):
        """Mean share of the less present colour in first frames: 0.5 = whole photo seen."""
        sampler = ClipSampler([("p.png", half)], [], DataConfig(size=32, window=2, crop_min=crop_min), seed=0)
        frames = torch.cat([sampler.batch(s, 4).rgb[:, 0] for s in range(10)])  # 40 first frames
        red = (frames[:, 0] > 0.5).flatten(1).float().mean(1)
        blue = (frames[:, 2] > 0.5).flatten(1).float().mean(1)
        return torch.minimum(red, blue).mean().item()

    assert minority_share(1.0) > 0.45
    assert minority_share(0.1) < 0.36


def test_photo_short_and_crop_min_reach_the_data(tmp_path):
    import pytest

    from colorize.training.data import build_samplers

    folder = write_photo_folder(tmp_path / "photos", n=6, size=96)
    train, _ = build_samplers([folder], DataConfig(size=32, window=2, store_short=48, photo_short=80))
    assert min(train.photos[0][1].shape[:2]) == 80
    train, _ = build_samplers([folder], DataConfig(size=32, window=2, store_short=48))
    assert min(train.photos[0][1].shape[:2]) == 48
    with pytest.raises(ValueError, match="crop_min"):
        build_samplers([folder], DataConfig(size=32, window=2, crop_min=0.0))
    cfg = replace(_cfg(tmp_path / "t", 1), data=(str(folder),), photo_short=72, crop_min=0.4)
    trainer = Trainer(cfg)
    assert min(trainer.train_sampler.photos[0][1].shape[:2]) == 72 and trainer.train_sampler.cfg.crop_min == 0.4


def test_resume_gives_the_same_state_as_an_uninterrupted_run(tmp_path):
    tr, va = _samplers(tmp_path)
    torch.manual_seed(0)
    straight = Trainer(_cfg(tmp_path / "a", 4), tr, va)
    straight.run()

    torch.manual_seed(0)
    first = Trainer(_cfg(tmp_path / "b", 4), tr, va)
    first.run(stop_after=2)
    first.save()
    torch.manual_seed(123)  # a new process: different global RNG until resume restores it
    second = Trainer(_cfg(tmp_path / "b", 4), tr, va)
    assert second.resume() and second.step == 2
    second.run()
    for (k, a), (_, b) in zip(straight.net.state_dict().items(), second.net.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-6), k

    rows = list(csv.DictReader(open(tmp_path / "a" / "log.csv")))
    assert [r["kind"] for r in rows].count("eval") == 2
    assert all(float(r["val_psnr"]) > 0 for r in rows if r["kind"] == "eval")
    assert (tmp_path / "a" / "best.pt").exists() and (tmp_path / "a" / "last.pt").exists()


@pytest.mark.filterwarnings("ignore:--precision bf16 on a CPU without native")  # machines without it
def test_bf16_autocast_trains_float32_weights(tmp_path):
    tr, va = _samplers(tmp_path)
    torch.manual_seed(0)
    trainer = Trainer(replace(_cfg(tmp_path / "bf16", 2), precision="bf16"), tr, va)
    before = {k: v.clone() for k, v in trainer.net.state_dict().items()}
    rows = []
    trainer.run(on_log=rows.append)
    after = trainer.net.state_dict()
    assert all(v.dtype == torch.float32 for v in after.values())
    assert any(not torch.equal(before[k], after[k]) for k in before)
    losses = [float(r["loss"]) for r in rows if r["kind"] == "train"]
    assert len(losses) == 2 and all(0 < x < 1 for x in losses)


def test_bf16_warns_only_where_the_cpu_emulates_it(tmp_path, monkeypatch):
    import warnings

    import colorize.training.trainer as trainer_module

    tr, va = _samplers(tmp_path)
    monkeypatch.setattr(trainer_module, "cpu_bf16_is_native", lambda: False)
    with pytest.warns(RuntimeWarning, match="fp32"):
        Trainer(replace(_cfg(tmp_path / "emulated", 2), precision="bf16"), tr, va)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Trainer(_cfg(tmp_path / "fp32", 2), tr, va)  # fp32 never warns
        monkeypatch.setattr(trainer_module, "cpu_bf16_is_native", lambda: True)
        Trainer(replace(_cfg(tmp_path / "native", 2), precision="bf16"), tr, va)


def test_unknown_precision_is_refused(tmp_path):
    import pytest

    tr, va = _samplers(tmp_path)
    with pytest.raises(ValueError, match="precision"):
        Trainer(replace(_cfg(tmp_path / "x", 2), precision="fp8"), tr, va)


def test_cli_train_treats_none_as_the_default(tmp_path, monkeypatch):
    """The CLI passes None for options it was not given; the trainer must see its own defaults."""
    import colorize.training as training
    import colorize.training.trainer as trainer_mod

    seen = {}

    class Recorder:
        def __init__(self, cfg):
            seen["cfg"] = cfg

        def run(self, on_log=None):
            return {"step": 0}

    monkeypatch.setattr(trainer_mod, "Trainer", Recorder)
    training.cli_train(model="lstm", data=(tmp_path,), out=tmp_path / "o", steps=None, batch=3, lr=None,
                       init=None, precision="bf16", device="cpu")
    cfg = seen["cfg"]
    assert cfg.steps == TrainConfig.steps and cfg.lr == TrainConfig.lr and cfg.init == ""
    assert cfg.batch == 3 and cfg.precision == "bf16"


def test_ema_is_validated_exported_and_resumed_exactly(tmp_path):
    tr, va = _samplers(tmp_path)
    torch.manual_seed(0)
    straight = Trainer(replace(_cfg(tmp_path / "a", 4), ema=0.5), tr, va)
    start = {k: v.clone() for k, v in straight.net.state_dict().items()}
    straight.run()
    raw, avg = straight.net.state_dict(), straight.ema_net.state_dict()
    # The average lies strictly between the start and the raw weights for a trained tensor.
    key = next(k for k in raw if not torch.equal(raw[k], start[k]))
    assert not torch.equal(avg[key], raw[key]) and not torch.equal(avg[key], start[key])
    # Four steps of decay 0.5: avg = 0.0625 * start + sum of the later raw weights; at least it
    # is closer to the final weights than the start is.
    assert (avg[key] - raw[key]).norm() < (start[key] - raw[key]).norm()
    best = torch.load(tmp_path / "a" / "best.pt", weights_only=True)
    assert all(v.requires_grad is False for v in straight.ema_net.parameters())

    torch.manual_seed(0)
    first = Trainer(replace(_cfg(tmp_path / "b", 4), ema=0.5), tr, va)
    first.run(stop_after=2)
    first.save()
    torch.manual_seed(7)
    second = Trainer(replace(_cfg(tmp_path / "b", 4), ema=0.5), tr, va)
    assert second.resume()
    second.run()
    for k, v in straight.ema_net.state_dict().items():
        assert torch.allclose(v, second.ema_net.state_dict()[k], atol=1e-6), k
    # best.pt holds averaged weights (from one of the evaluations), never the raw ones.
    assert set(best) == set(avg)
    assert any(not torch.equal(best[k], raw[k]) for k in best)


def test_ema_averages_batchnorm_statistics_with_the_weights_and_copies_other_buffers(tmp_path):
    tr, va = _samplers(tmp_path)
    trainer = Trainer(replace(_cfg(tmp_path / "e", 2), ema=0.75), tr, va)

    def small():
        net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), torch.nn.BatchNorm2d(2))
        net.register_buffer("chroma_gain", torch.tensor(1.0))
        return net

    trainer.net, trainer.ema_net = small(), small()
    trainer.ema_net.load_state_dict(trainer.net.state_dict())
    trainer.net.train()(torch.randn(8, 1, 4, 4) * 3 + 5)  # the live net's statistics move
    trainer.net.chroma_gain.fill_(1.05)
    live, old = trainer.net[1], trainer.ema_net[1].running_mean.clone()
    trainer.update_ema()
    bn = trainer.ema_net[1]
    assert torch.allclose(bn.running_mean, 0.75 * old + 0.25 * live.running_mean)
    assert not torch.allclose(bn.running_mean, live.running_mean)
    assert torch.allclose(bn.running_var, 0.75 * torch.ones(2) + 0.25 * live.running_var)
    assert int(bn.num_batches_tracked) == int(live.num_batches_tracked) == 1  # counters copied
    assert float(trainer.ema_net.chroma_gain) == pytest.approx(1.05)  # a calibration is copied, exactly
    assert torch.equal(trainer.ema_net.chroma_gain, trainer.net.chroma_gain)


def test_ema_out_of_range_is_refused(tmp_path):
    import pytest

    tr, va = _samplers(tmp_path)
    with pytest.raises(ValueError, match="ema"):
        Trainer(replace(_cfg(tmp_path / "x", 2), ema=1.0), tr, va)


def test_family_overrides_change_the_loss_and_are_checked(tmp_path):
    import pytest

    from colorize.models.lstm import FAMILY

    tr, va = _samplers(tmp_path)
    torch.manual_seed(0)
    plain = Trainer(replace(_cfg(tmp_path / "p", 1), extra={"temporal_weight": "0"}), tr, va)
    assert plain.family.temporal_weight == 0.0 and FAMILY.temporal_weight > 0  # the module's FAMILY is untouched
    batch = tr.batch(0, 2)
    off = plain.family.training_step(plain.net, batch, plain.backbone, 0)
    on = FAMILY.training_step(plain.net, batch, plain.backbone, 0)
    assert "temporal" not in off and on["temporal"] > 0
    assert torch.isclose(on["loss"], on["mse"] + FAMILY.temporal_weight * on["temporal"])
    for bad, match in (({"nonsense": "1"}, "no option"), ({"window": "3"}, "not a numeric"),
                       ({"temporal_weight": "x"}, "expected float")):
        with pytest.raises(ValueError, match=match):
            Trainer(replace(_cfg(tmp_path / "q", 1), extra=bad), tr, va)


def test_export_writes_a_manifest_record_and_refuses_a_worse_file(tmp_path):
    import json

    import pytest

    from colorize.models.registry import read_manifest, sha256_file
    from colorize.training.export import export, metrics_from_eval

    tr, va = _samplers(tmp_path)
    torch.manual_seed(0)
    Trainer(replace(_cfg(tmp_path / "run", 2), ema=0.9, extra={"temporal_weight": "0.25"}), tr, va).run()
    report = {
        "mean": {"psnr_gain": 2.5, "psnr_output": 25.0, "psnr_grey": 22.5, "colourfulness_ratio": 0.7123456,
                 "flicker_ratio": 1.0, "frames": 10},
        "clips": [{"name": "a.mp4", "psnr_gain": 3.004}, {"name": "b.mp4", "psnr_gain": 1.996}],
        "psnr_over_time": [{"first": 0, "last": 4, "psnr_gain": 2.444}],
    }
    metrics = metrics_from_eval(report, "test mode")
    assert metrics["psnr_gain_db"] == 2.5 and metrics["per_clip"] == {"a.mp4": 3.0, "b.mp4": 2.0}
    assert metrics["dev_eval"]["colourfulness_ratio"] == 0.7123 and metrics["dev_eval"]["accuracy"] is None
    assert metrics["psnr_gain_over_time"] == {"0-4": 2.44} and metrics["eval_mode"] == "test mode"

    wdir = tmp_path / "weights"
    wdir.mkdir()
    record = export(tmp_path / "run", "lstm", metrics, weights_dir=wdir)
    assert record["sha256"] == sha256_file(wdir / "lstm.pt") == read_manifest(wdir)["lstm"]["sha256"]
    assert record["train_config"]["ema"] == 0.9 and record["train_config"]["extra"] == {"temporal_weight": "0.25"}
    assert record["train_config"]["photo_short"] == 160 and record["train_config"]["crop_min"] == 0.55
    assert json.loads((wdir / "manifest.json").read_text())["lstm"]["metrics"]["psnr_gain_db"] == 2.5
    assert "init" not in record and "history" not in record
    worse = dict(metrics, psnr_gain_db=2.4)
    with pytest.raises(SystemExit, match="refusing"):
        export(tmp_path / "run", "lstm", worse, weights_dir=wdir)
    assert export(tmp_path / "run", "lstm", worse, force=True, weights_dir=wdir)["metrics"]["psnr_gain_db"] == 2.4

    # A fine-tuning run from the shipped file records what it started from.
    shipped = read_manifest(wdir)["lstm"]
    Trainer(replace(_cfg(tmp_path / "tuned", 2), init=str(wdir / "lstm.pt")), tr, va).run()
    record = export(tmp_path / "tuned", "lstm", dict(metrics, psnr_gain_db=2.6), weights_dir=wdir, history="why")
    assert record["init"] == {"file": "lstm.pt", "sha256": shipped["sha256"], "steps": shipped["steps"],
                              "psnr_gain_db": 2.4}
    assert record["history"] == "why" and record["sha256"] != shipped["sha256"]


def test_validation_clips_are_whole_sources_and_the_ones_the_trainer_holds_out(tmp_path):
    import subprocess
    import sys

    import av
    import numpy as np

    from colorize.training.data import build_samplers, is_validation_clip

    names = [f"src{i}" for i in range(60)]
    held = [n for n in names if is_validation_clip(f"x/{n}_part1.mp4")]
    assert 0 < len(held) < 20  # about 12 % of sources
    assert all(is_validation_clip(f"y/{n}_part3.mp4") == (n in held) for n in names)  # parts stay together
    # The trainer's split of real files agrees, and the script links exactly those.
    clips = tmp_path / "clips"
    clips.mkdir()
    for n in names[:12]:
        with av.open(str(clips / f"{n}.mp4"), "w") as out:
            s = out.add_stream("mpeg4", rate=10)
            s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
            for k in range(3):
                img = np.full((32, 32, 3), 40 * k, np.uint8)
                for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    out.mux(p)
            for p in s.encode():
                out.mux(p)
    train, val = build_samplers([clips], DataConfig(size=16, window=2))
    expect = sorted(f"{n}.mp4" for n in names[:12] if n in held)
    assert expect  # (src10 is held out)
    assert sorted(Path(c[0]).name for c in val.clips) == expect
    assert not {Path(c[0]).name for c in train.clips} & set(expect)
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "validation_clips.py"
    out = subprocess.run([sys.executable, str(script), str(clips), str(tmp_path / "val")],
                         capture_output=True, text=True, timeout=60)
    assert sorted(p.name for p in (tmp_path / "val").iterdir()) == expect
    assert out.returncode == (0 if expect else 1)


def test_psnr_at_colour_scales_chroma_to_the_target():
    from colorize.color.lab import lab_to_rgb
    from colorize.training.trainer import AT_COLOUR_GAINS, colourfulness, psnr, psnr_at_colour

    g = torch.Generator().manual_seed(0)
    l = torch.rand(2, 1, 16, 16, generator=g) * 60 + 20
    ab_true = torch.randn(2, 2, 16, 16, generator=g) * 25
    gt = lab_to_rgb(torch.cat((l, ab_true), 1))
    frames = [(l, ab_true * 0.7, gt)]  # a desaturated prediction, right hues
    plain = psnr(lab_to_rgb(torch.cat((l, ab_true * 0.7), 1)), gt)
    at = psnr_at_colour(frames, 0.95)
    assert at["colour_ratio"] >= 0.95 and at["gain"] > 1.0
    smaller = [x for x in AT_COLOUR_GAINS if x < at["gain"]][-1]  # the gain before it falls short
    below = colourfulness(lab_to_rgb(torch.cat((l, ab_true * 0.7 * smaller), 1))) / colourfulness(gt)
    assert below < 0.95
    assert at["psnr"] > plain  # towards the truth's chroma: closer
    assert psnr_at_colour(frames, 0.1)["gain"] == 1.0  # already colourful enough: unscaled
    assert psnr_at_colour(frames, 50.0)["gain"] == AT_COLOUR_GAINS[-1]  # unreachable: the largest
    # ``show`` (the gamut step) acts on the scaled colours, as in the pipeline: a gain of g then
    # halving is the colour of g / 2 without it.
    halved = psnr_at_colour(frames, 0.95, show=lambda l_, ab: ab * 0.5)
    assert halved["gain"] >= 2 * at["gain"] - 0.051 or halved["gain"] == AT_COLOUR_GAINS[-1]
    grey = psnr(lab_to_rgb(torch.cat((l, torch.zeros_like(ab_true)), 1)), gt)
    assert psnr_at_colour(frames, 0.5, show=lambda l_, ab: ab * 0)["psnr"] == pytest.approx(grey)


def test_validation_measures_the_colours_as_shown_after_the_gamut_step(tmp_path):
    from colorize.color.gamut import limit_chroma

    tr, va = _samplers(tmp_path)
    trainer = Trainer(replace(_cfg(tmp_path / "g", 1), extra={"gamut": "1"}, best_at_colour=0.8), tr, va)
    # a net that paints everything strongly, also where sRGB has no room for it (dark, bright)
    trainer.family.predict = lambda net, lab, backbone: torch.full_like(lab[:, :, 1:], 70.0)
    shown = trainer.evaluate()
    trainer.family.gamut = 0  # a family trained without the step is measured on its raw colours
    raw = trainer.evaluate()
    from colorize.color.lab import lab_to_rgb
    from colorize.training.trainer import psnr

    batch = va.batch(0, 2)  # the one validation batch (eval_batches=1, batch 2)
    lab, gt = batch.lab.flatten(0, 1), batch.rgb.flatten(0, 1)
    ab = torch.full_like(lab[:, 1:], 70.0)
    as_shown = psnr(lab_to_rgb(torch.cat((lab[:, :1], limit_chroma(lab[:, :1], ab)), 1)), gt)
    as_predicted = psnr(lab_to_rgb(torch.cat((lab[:, :1], ab), 1)), gt)
    assert as_shown > as_predicted + 0.5  # the step takes out colour the frames cannot show
    assert shown["val_psnr"] == pytest.approx(as_shown) and raw["val_psnr"] == pytest.approx(as_predicted)
    assert torch.equal(Trainer.shown(trainer, lab[:, :1], ab), ab)  # gamut 0: untouched
    trainer.family.gamut = 1
    assert torch.equal(trainer.shown(lab[:, :1], ab), limit_chroma(lab[:, :1], ab))


def test_best_at_colour_picks_by_the_gain_at_that_colour_and_logs_it(tmp_path):
    tr, va = _samplers(tmp_path)
    torch.manual_seed(0)
    trainer = Trainer(replace(_cfg(tmp_path / "run", 4), best_at_colour=0.8), tr, va)
    trainer.run()
    rows = [r for r in csv.DictReader(open(tmp_path / "run" / "log.csv")) if r["kind"] == "eval"]
    assert rows and all(r["val_gain_at_colour"] and r["val_chroma_gain"] for r in rows)
    best_step = max(rows, key=lambda r: float(r["val_gain_at_colour"]))["step"]
    best = __import__("json").loads((tmp_path / "run" / "best.json").read_text())
    assert str(best["step"]) == best_step and "val_gain_at_colour" in best
    assert trainer.best == pytest.approx(max(float(r["val_gain_at_colour"]) for r in rows), abs=1e-4)
    # best.pt carries the gain it was chosen with: loaded back, it scores the recorded gain at
    # colour as its plain validation figure, with no further scaling
    state = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    assert float(state["chroma_gain"]) == pytest.approx(best["val_chroma_gain"]) == best["chroma_gain_in_file"]
    trainer.eval_net.load_state_dict(state)
    again = trainer.evaluate()
    assert again["val_gain"] == pytest.approx(best["val_gain_at_colour"], abs=1e-4)


def test_fold_chroma_gain_multiplies_the_buffer_a_file_already_has():
    from colorize.training.trainer import fold_chroma_gain

    w = torch.ones(3)
    lstm_state = {"w": w, "chroma_gain": torch.tensor(1.05)}
    out, value = fold_chroma_gain(lstm_state, 1.1)
    assert value == pytest.approx(1.155) and float(out["chroma_gain"]) == pytest.approx(1.155)
    assert out["w"] is w and float(lstm_state["chroma_gain"]) == pytest.approx(1.05)  # input untouched
    out, value = fold_chroma_gain({"f.conv": w, "f.chroma_gain": torch.tensor(0.85)}, 1.2)
    assert value == pytest.approx(1.02) and float(out["f.chroma_gain"]) == pytest.approx(1.02)
    exemplar_state = {"w": w}
    assert fold_chroma_gain(exemplar_state, 1.3) == (exemplar_state, None)


def test_selfreg_semantic_scale_trains_on_the_larger_l_and_wins_over_the_init_file(tmp_path):
    from colorize.models.selfreg import SelfRegFamily

    folder = write_photo_folder(tmp_path / "photos", n=4, size=64)
    photos = load_photos([folder], short=64)
    dcfg = DataConfig(size=32, window=2)
    tr, va = ClipSampler(photos, [], dcfg, seed=3), ClipSampler(photos[:2], [], dcfg, seed=4)
    init = tmp_path / "init.pt"
    torch.save(SelfRegFamily().build_net().state_dict(), init)  # a file at scale 1
    cfg = TrainConfig(model="selfreg", data=(), out=str(tmp_path / "run"), steps=2, batch=2, size=32, warmup=1,
                      log_every=1, eval_every=2, eval_batches=1, threads=1, init=str(init),
                      extra={"semantic_scale": "2"})
    trainer = Trainer(cfg, tr, va)
    assert float(trainer.net.semantic_scale) == 2.0
    seen = []
    inner = trainer.backbone.forward

    def spy(l, **kw):
        seen.append(tuple(l.shape[-2:]))
        return inner(l, **kw)

    trainer.backbone.forward = spy
    trainer.run()
    assert seen and set(seen) == {(64, 64)}  # training steps and validation: the 32-px crops at 2x
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    assert float(best["semantic_scale"]) == 2.0  # the exported file tells inference the same
    with pytest.raises(ValueError, match="semantic_scale"):
        Trainer(replace(cfg, out=str(tmp_path / "bad"), extra={"semantic_scale": "0"}), tr, va)


def test_validation_clips_from_held_out_photos_are_short_zooms_of_them_per_source(tmp_path):
    import subprocess
    import sys

    import av
    import cv2
    import numpy as np

    from colorize.training.data import build_samplers, is_validation_photo

    root = tmp_path / "photos"
    for src in ("a", "b"):
        write_photo_folder(root / src, n=40, size=72, seed=ord(src))
    train, val = build_samplers([root], DataConfig(size=16, window=2))
    held = {Path(p[0]) for p in val.photos}
    assert held and all(is_validation_photo(p) for p in held)
    assert not held & {Path(p[0]) for p in train.photos}
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "validation_clips.py"
    out = subprocess.run([sys.executable, str(script), str(root), str(tmp_path / "val"), "--per-source", "2",
                          "--frames", "3"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    made = sorted((tmp_path / "val").iterdir())
    per_source = {src: sum(1 for p in held if p.parent.name == src) for src in ("a", "b")}
    assert len(made) == sum(min(2, n) for n in per_source.values())
    for clip in made:
        src, stem = clip.stem.split("_")[-2], clip.stem.split("_", 3)[-1]
        photo = root / src / f"{stem}{Path(next(iter(held)).name).suffix}"
        assert photo in held  # only held-out photos, named after them
        with av.open(str(clip)) as c:
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        assert len(frames) == 3
        rgb = cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2RGB)
        assert frames[0].shape == rgb.shape  # (72 is even)
        # frame 0 is the photo itself (up to yuv420p chroma), later ones zoom in: they differ
        assert np.abs(frames[0].astype(int) - rgb).mean() < 6
        assert np.abs(frames[2].astype(int) - frames[0]).mean() > np.abs(frames[0].astype(int) - rgb).mean()


def test_freeze_bn_keeps_the_init_files_statistics_and_normalises_with_them(tmp_path):
    """--freeze-bn: the BatchNorm layers of a fine-tuned net normalise with the init file's
    running statistics and never update them, while the weights still train; without it the
    statistics drift from the first step (what made every fine-tune of selfreg fall at once)."""
    from colorize.models.selfreg import SelfRegFamily

    folder = write_photo_folder(tmp_path / "photos", n=4, size=64)
    photos = load_photos([folder], short=64)
    dcfg = DataConfig(size=32, window=2)
    tr, va = ClipSampler(photos, [], dcfg, seed=3), ClipSampler(photos[:2], [], dcfg, seed=4)
    init = tmp_path / "init.pt"
    torch.save(SelfRegFamily().build_net().state_dict(), init)
    stats = {}
    for frozen in (False, True):
        cfg = TrainConfig(model="selfreg", data=(), out=str(tmp_path / f"run{frozen}"), steps=3, batch=2,
                          size=32, warmup=1, log_every=1, eval_every=3, eval_batches=1, threads=1,
                          init=str(init), freeze_bn=frozen)
        trainer = Trainer(cfg, tr, va)
        bns = [m for m in trainer.net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        assert bns
        before = [(m.running_mean.clone(), m.running_var.clone(), m.weight.detach().clone()) for m in bns]
        trainer.run()
        assert all(m.training is not frozen for m in bns)  # after the run's validation too
        stats[frozen] = [(torch.equal(m.running_mean, b[0]) and torch.equal(m.running_var, b[1]),
                          torch.equal(m.weight, b[2])) for m, b in zip(bns, before)]
    assert all(same for same, _ in stats[True]) and not any(same for same, _ in stats[False])
    assert not all(w_same for _, w_same in stats[True])  # the BN's own scale and shift still learn


def test_clips_are_held_at_a_short_side_that_follows_the_crop_size(tmp_path):
    from tests.media import make_clip

    from colorize.training.data import clip_store_short

    assert clip_store_short(64) == clip_store_short(128) == DataConfig.store_short  # as before
    assert clip_store_short(256) == 320  # 256-px crops of 0.6..1 of it are downsampled
    folder = tmp_path / "clips"
    folder.mkdir()
    for name in "abc":
        make_clip(folder / f"{name}.mp4", size=(640, 400), frames=6)
    photos = write_photo_folder(tmp_path / "photos", n=4, size=64)  # validation falls back on them
    for size, short in ((32, 160), (256, 320)):
        cfg = replace(_cfg(tmp_path / f"t{size}", 1), data=(str(folder), str(photos)), size=size)
        trainer = Trainer(cfg)
        clips = trainer.train_sampler.clips + trainer.val_sampler.clips
        assert clips and all(min(frames.shape[1:3]) == short for _, frames in clips)


def test_a_lite0_selfreg_file_warm_starts_a_lite2_net_except_where_it_reads_the_backbone(tmp_path, monkeypatch):
    from colorize.models.backbone import EfficientNetLite
    from colorize.models.selfreg import SelfRegFamily

    # What the file gives is the question, not the features: a Lite2 of random weights stands in for
    # the optional ImageNet package (colorize[lite2]), so this runs without it.
    monkeypatch.setattr("colorize.training.trainer.load_pretrained_backbone", lambda variant: EfficientNetLite(variant))

    folder = write_photo_folder(tmp_path / "photos", n=4, size=64)
    photos = load_photos([folder], short=64)
    dcfg = DataConfig(size=32, window=2)
    tr, va = ClipSampler(photos, [], dcfg, seed=3), ClipSampler(photos[:2], [], dcfg, seed=4)
    torch.manual_seed(7)
    lite0 = SelfRegFamily().build_net().state_dict()
    # unlike any fresh net (the scalar settings, which the family's own settings override, aside)
    lite0 = {k: v + 0.5 if v.is_floating_point() and v.numel() > 1 else v for k, v in lite0.items()}
    init = tmp_path / "lite0.pt"
    torch.save(lite0, init)
    cfg = TrainConfig(model="selfreg", data=(), out=str(tmp_path / "run"), steps=1, batch=2, size=32, warmup=1,
                      log_every=1, eval_every=1, eval_batches=1, threads=1, init=str(init), extra={"lite2": "1"})
    trainer = Trainer(cfg, tr, va)
    got = trainer.net.state_dict()
    assert trainer.net.backbone_variant == "lite2"
    fresh = set(trainer.init_fresh)
    assert fresh and all(k.startswith("f.hyper.") for k in fresh)
    assert "f.hyper.reduce.2.weight" in fresh  # same shape in both backbones, other features: fresh too
    for k, v in got.items():
        if k in fresh:
            assert v.shape != lite0[k].shape or not torch.equal(v, lite0[k]), k
        elif v.numel() > 1:  # the L path, the decoder, g and the BatchNorm statistics come from the file
            assert torch.equal(v, lite0[k]), k
    trainer.run()  # and it trains
    assert (tmp_path / "run" / "best.pt").exists()

    # Same backbone: strict as before, nothing starts fresh; a layer of another shape elsewhere is refused.
    same = Trainer(replace(cfg, out=str(tmp_path / "same"), extra={}), tr, va)
    assert same.init_fresh == [] and torch.equal(same.net.state_dict()["f.hyper.bias"], lite0["f.hyper.bias"])
    bad = dict(lite0, **{"f.head.weight": torch.zeros(3, 3, 3, 3)})
    torch.save(bad, init)
    with pytest.raises(ValueError, match=r"other shapes for f\.head\.weight \(3, 3, 3, 3\)"):
        Trainer(replace(cfg, out=str(tmp_path / "bad")), tr, va)
    # A file of f's shipped widths does not start a wider f (and says so, not a torch size error).
    torch.save(lite0, init)
    with pytest.raises(ValueError, match="does not fit model 'selfreg' as configured: other shapes for f.enc3"):
        Trainer(replace(cfg, out=str(tmp_path / "wide"), extra={"width_s8": "96"}), tr, va)


def test_init_from_a_wider_selfreg_file_takes_f_widths_from_the_file_unless_set(tmp_path):
    """`colorize train --init weights/selfreg.pt` fine-tunes a wider shipped file with no options:
    the widths not given with --set come from the file's shapes, and what is given still must fit."""
    from colorize.models.selfreg import SelfRegFamily, widths_of
    from colorize.training.trainer import load_family

    folder = write_photo_folder(tmp_path / "photos", n=4, size=64)
    photos = load_photos([folder], short=64)
    dcfg = DataConfig(size=32, window=2)
    tr, va = ClipSampler(photos, [], dcfg, seed=3), ClipSampler(photos[:2], [], dcfg, seed=4)
    wide = SelfRegFamily()
    wide.width_s8 = 96
    torch.manual_seed(5)
    state = wide.build_net().state_dict()
    init = tmp_path / "wide.pt"
    torch.save(state, init)
    cfg = TrainConfig(model="selfreg", data=(), out=str(tmp_path / "run"), steps=1, batch=2, size=32, warmup=1,
                      log_every=1, eval_every=1, eval_batches=1, threads=1, init=str(init))
    trainer = Trainer(cfg, tr, va)
    got = trainer.net.state_dict()
    assert widths_of(got) == (8, 16, 32, 96)
    assert all(torch.equal(v, state[k]) for k, v in got.items() if v.is_floating_point() and v.numel() > 1)
    assert load_family("selfreg").width_s8 == 0  # the module's family is untouched
    trainer.run()
    assert widths_of(torch.load(tmp_path / "run" / "best.pt", weights_only=True)) == (8, 16, 32, 96)
    # the width that is set explicitly wins, and must fit the file
    with pytest.raises(ValueError, match="other shapes for f.enc3"):
        Trainer(replace(cfg, out=str(tmp_path / "narrow"), extra={"width_s8": "64"}), tr, va)
    both = Trainer(replace(cfg, out=str(tmp_path / "both"), extra={"width_s8": "96"}), tr, va)
    assert widths_of(both.net.state_dict()) == (8, 16, 32, 96)


# ------------------------------------------------------------------------------- --val-clips


def _val_clip_folder(tmp_path):
    from tests.evaluation.fakes import write_clip

    folder = tmp_path / "val_clips"
    folder.mkdir()
    write_clip(folder / "a.mp4", frames=4, width=64, height=48)
    return folder


def test_val_clips_rank_checkpoints_by_colorize_eval_of_the_file_best_pt_becomes(tmp_path):
    from colorize.evaluation.runner import evaluate
    from colorize.models import create_model

    tr, va = _samplers(tmp_path)
    clips = _val_clip_folder(tmp_path)
    torch.manual_seed(0)
    trainer = Trainer(replace(_cfg(tmp_path / "run", 4), val_clips=str(clips), val_frames=3), tr, va)
    trainer.run()
    rows = [r for r in csv.DictReader(open(tmp_path / "run" / "log.csv")) if r["kind"] == "eval"]
    assert len(rows) == 2 and all(r["clips_gain"] and r["clips_colour_ratio"] and r["val_gain"] for r in rows)
    best = __import__("json").loads((tmp_path / "run" / "best.json").read_text())
    assert str(best["step"]) == max(rows, key=lambda r: float(r["clips_gain"]))["step"]
    assert trainer.best == pytest.approx(max(float(r["clips_gain"]) for r in rows), abs=1e-4)
    # the figure is colorize eval's of the exported file: whole frames, the stream, the gamut step
    again = evaluate(create_model("lstm", weights=tmp_path / "run" / "best.pt"), [clips / "a.mp4"], max_frames=3).mean()
    assert again["psnr_gain"] == pytest.approx(best["clips_gain"], abs=1e-6)
    assert again["colourfulness_ratio"] == pytest.approx(best["clips_colour_ratio"], abs=1e-6)
    assert not list((tmp_path / "run").glob("*.tmp"))


@pytest.mark.parametrize("target", [0.07, 0.8])  # the 2-step net's clips colour is 0.05 at gain 1
def test_val_clips_at_a_colour_target_fold_the_gain_that_reaches_it(tmp_path, target):
    from colorize.evaluation.runner import evaluate
    from colorize.models import create_model

    tr, va = _samplers(tmp_path)
    clips = _val_clip_folder(tmp_path)
    torch.manual_seed(0)
    cfg = replace(_cfg(tmp_path / "run", 2), val_clips=str(clips), val_frames=3, best_at_colour=target)
    Trainer(cfg, tr, va).run()
    best = __import__("json").loads((tmp_path / "run" / "best.json").read_text())
    gain = best["clips_chroma_gain"]
    assert best["chroma_gain_in_file"] == pytest.approx(gain) and 1.0 <= gain <= 2.0
    state = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    assert float(state["chroma_gain"]) == pytest.approx(gain)
    m = evaluate(create_model("lstm", weights=tmp_path / "run" / "best.pt"), [clips / "a.mp4"], max_frames=3).mean()
    if target < 0.1:  # reached: read off between two passes, and the file shows that colour
        assert 1.0 < gain < 2.0 and m["colourfulness_ratio"] == pytest.approx(target, abs=0.005)
        assert m["psnr_gain"] == pytest.approx(best["clips_gain_at_colour"], abs=0.05)
    else:  # out of reach: the most colourful pass, measured as it is
        assert gain == 2.0 and m["psnr_gain"] == pytest.approx(best["clips_gain_at_colour"], abs=1e-6)
    # more colour than the plain file measured, at the PSNR the criterion recorded
    assert m["colourfulness_ratio"] > best["clips_colour_ratio"]


def test_val_clips_that_are_not_there_fail_before_training(tmp_path):
    from colorize.evaluation.runner import EvalError

    tr, va = _samplers(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(EvalError, match="no video clips"):
        Trainer(replace(_cfg(tmp_path / "run", 2), val_clips=str(tmp_path / "empty")), tr, va)


def test_val_clips_score_exemplar_by_propagation_from_each_clips_first_frame(tmp_path):
    from colorize.evaluation.runner import evaluate
    from colorize.models import create_model

    folder = write_photo_folder(tmp_path / "photos", n=4, size=64)
    photos = load_photos([folder], short=64)
    dcfg = DataConfig(size=32, window=3)
    tr, va = ClipSampler(photos, [], dcfg, seed=3), ClipSampler(photos[:2], [], dcfg, seed=4)
    clips = _val_clip_folder(tmp_path)
    torch.manual_seed(0)
    cfg = TrainConfig(model="exemplar", data=(), out=str(tmp_path / "run"), steps=1, batch=2, size=32, warmup=1,
                      log_every=1, eval_every=1, eval_batches=1, threads=1, val_clips=str(clips), val_frames=3,
                      best_at_colour=0.8)
    Trainer(cfg, tr, va).run()
    best = __import__("json").loads((tmp_path / "run" / "best.json").read_text())
    # no chroma gain in an exemplar file: scored as it is, at the colour it has
    assert best["clips_chroma_gain"] == 1.0 and best["clips_gain_at_colour"] == best["clips_gain"]
    m = evaluate(create_model("exemplar", weights=tmp_path / "run" / "best.pt"), [clips / "a.mp4"],
                 max_frames=3, ref_mode="first-frame").mean()
    assert m["psnr_gain"] == pytest.approx(best["clips_gain"], abs=1e-6)
