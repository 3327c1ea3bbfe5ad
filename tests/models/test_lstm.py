import pytest
import torch

from colorize.models.backbone import FrozenBackbone, load_pretrained_backbone
from colorize.models.lstm import BACKBONE_STRIDES, INFO, WINDOW, FAMILY, FlowChromaNet, LSTMColorizer


@pytest.fixture(scope="module")
def colorizer():
    torch.manual_seed(0)
    net = FlowChromaNet()
    # make the untrained LSTM matter, so window bookkeeping is observable in the output
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(1.5)
        net.enc_s32.weight.normal_(0, 0.05)  # zero at initialisation; make the stride-32 path count
    # overlap off: these tests count what each push returns (the overlap has its own test below)
    return LSTMColorizer(INFO, net, FrozenBackbone(load_pretrained_backbone()), torch.device("cpu"), torch.float32,
                         overlap=False)


def _frames(n, h=64, w=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(1, h, w, generator=g) * 100 for _ in range(n)]


def test_shapes_range_and_immediate_output(colorizer):
    colorizer.reset()
    for i, l in enumerate(_frames(3)):
        out = colorizer.push(i, l)
        assert len(out) == 1 and out[0][0] == i
        ab = out[0][1]
        assert ab.shape == (1, 2, 64, 96) and ab.dtype == torch.float32
        assert torch.isfinite(ab).all() and ab.abs().max() <= 128
    assert colorizer.flush() == []


def test_stream_equals_training_form_over_sliding_window(colorizer):
    """Frame t in the stream == the causal network over its window of T frames ending at t."""
    frames = _frames(WINDOW + 2, seed=1)
    colorizer.reset()
    streamed = [colorizer.push(i, l)[0][1] for i, l in enumerate(frames)]
    bb = colorizer.backbone
    with torch.inference_mode():
        for t in (1, WINDOW + 1):
            win = torch.stack(frames[max(0, t - WINDOW + 1) : t + 1])[None]  # (1, T, 1, H, W)
            feats = bb(win.flatten(0, 1), strides=BACKBONE_STRIDES, embed=True)
            ab = colorizer.net(win, feats)[0, -1]
            assert (ab - streamed[t][0]).abs().max() < 1e-2


def test_overlap_gives_the_same_colours_one_push_later(colorizer):
    """With ``overlap`` the backbone runs in a worker thread, one frame ahead of the rest of the net:
    the same frames and colours come back (bit for bit), each one push later, the last at flush;
    reset drops a held frame."""
    import threading

    frames = _frames(WINDOW + 2, seed=4)
    colorizer.reset()
    plain = [colorizer.push(i, l)[0] for i, l in enumerate(frames)]
    ahead = LSTMColorizer(INFO, colorizer.net, colorizer.backbone, torch.device("cpu"), torch.float32, overlap=True)
    assert ahead.overlap
    names = []
    orig = ahead.backbone.forward

    def spy(*a, **k):
        names.append(threading.current_thread().name)
        return orig(*a, **k)

    ahead.backbone.forward = spy
    try:
        got = []
        for i, l in enumerate(frames):
            out = ahead.push(i, l)
            assert [j for j, _ in out] == ([] if i == 0 else [i - 1])
            got += out
        got += ahead.flush()
    finally:
        del ahead.backbone.forward
    assert [i for i, _ in got] == list(range(len(frames)))
    for (_, a), (_, b) in zip(got, plain):
        assert torch.equal(a, b)
    assert names and all(n.startswith("lstm-backbone") for n in names)
    ahead.push(0, frames[0])
    ahead.reset()
    assert ahead.flush() == []


def test_reset_forgets_the_window(colorizer):
    frames = _frames(4, seed=2)
    colorizer.reset()
    fresh = colorizer.push(0, frames[3])[0][1]
    colorizer.reset()
    for i in range(3):
        colorizer.push(i, frames[i])
    with_history = colorizer.push(3, frames[3])[0][1]
    colorizer.reset()
    after_reset = colorizer.push(0, frames[3])[0][1]
    assert torch.equal(after_reset, fresh)
    assert not torch.allclose(with_history, fresh)


def test_training_step_learns_a_tiny_batch():
    from tests.training.synthetic import synthetic_batch

    torch.manual_seed(0)
    batch = synthetic_batch(b=2, t=3, size=32)
    net = FAMILY.build_net()
    bb = FrozenBackbone(load_pretrained_backbone())
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    first = None
    for step in range(25):
        loss = FAMILY.training_step(net, batch, bb, step)["loss"]
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


def _window_and_feats(seed=0):
    g = torch.Generator().manual_seed(seed)
    win = torch.rand(1, 3, 1, 64, 64, generator=g) * 100
    feats = FrozenBackbone(load_pretrained_backbone())(win.flatten(0, 1), strides=BACKBONE_STRIDES, embed=True)
    return win, feats


def test_stride32_input_starts_at_zero_so_fine_tuning_keeps_the_function():
    torch.manual_seed(0)
    net = FlowChromaNet().eval()
    win, feats = _window_and_feats()
    other = {**feats, 32: torch.randn_like(feats[32]) * 5}
    with torch.no_grad():
        assert torch.equal(net(win, feats), net(win, other))  # a new net ignores the stride-32 map
        net.enc_s32.weight.normal_(0, 0.05)
        assert not torch.allclose(net(win, feats), net(win, other))  # once trained, it is used


def test_class_head_stream_equals_training_form_and_the_file_decides(tmp_path):
    from colorize.models import create_model
    from colorize.training.trainer import with_overrides
    from tests.training.synthetic import synthetic_batch

    torch.manual_seed(0)
    family = with_overrides(FAMILY, {"classes": "1"})
    net = family.build_net()
    assert net.cls is not None and FAMILY.build_net().cls is None
    out = family.training_step(net.train(), synthetic_batch(b=1, t=3, size=32), FrozenBackbone().eval(), step=0)
    assert {"classes", "mse", "temporal"} <= set(out) and 3 < float(out["classes"]) < 8
    out["loss"].backward()
    assert net.cls.logits.weight.grad.abs().sum() > 0 and net.out.weight.grad is None  # dec3/out unused
    net.cls.temperature.fill_(0.3)
    torch.save(net.state_dict(), tmp_path / "cls.pt")
    model = create_model("lstm", weights=tmp_path / "cls.pt", overlap=False)
    assert model.net.cls is not None and abs(float(model.net.cls.temperature) - 0.3) < 1e-6
    frames = _frames(3, seed=4)
    streamed = [model.push(i, l)[0][1] for i, l in enumerate(frames)]
    with torch.inference_mode():
        win = torch.stack(frames)[None]
        feats = model.backbone(win.flatten(0, 1), strides=BACKBONE_STRIDES, embed=True)
        ab, logits = model.net(win, feats, logits=True)
    assert logits.shape[-2:] == (64 // 4, 96 // 4)
    assert (ab[0, -1] - streamed[-1][0]).abs().max() < 1e-2
    assert (ab[0, -1] - model.net.cls.shown(logits[-1:], win[0, -1:], temperature=0.3)[0]).abs().max() < 1e-3


def test_class_rebalancing_weights_the_cross_entropy_by_colour_rarity():
    from colorize.training.rebalance import NBINS
    from colorize.training.trainer import with_overrides
    from tests.training.synthetic import synthetic_batch

    torch.manual_seed(0)
    plain = with_overrides(FAMILY, {"classes": "1"})
    net = plain.build_net().eval()
    batch = synthetic_batch(b=1, t=2, size=32)
    bb = FrozenBackbone().eval()
    rare = with_overrides(FAMILY, {"classes": "1", "rebalance": "0.5"})
    with torch.no_grad():
        base = plain.training_step(net, batch, bb, step=0)["classes"]
        rare.ab_weights = torch.ones(NBINS, NBINS)  # uniform weights: the same loss
        assert torch.allclose(rare.training_step(net, batch, bb, step=0)["classes"], base)
        rare.ab_weights = torch.full((NBINS, NBINS), 3.0)
        assert torch.allclose(rare.training_step(net, batch, bb, step=0)["classes"], 3 * base)


def test_calibration_shifts_and_scales_only_the_shown_colours_and_travels_in_the_file(tmp_path):
    from colorize.models import create_model
    from colorize.models.lstm import with_calibration

    torch.manual_seed(0)
    net = FlowChromaNet().eval()
    assert torch.equal(net.ab_offset, torch.zeros(2)) and float(net.chroma_gain) == 1.0
    backbone = FrozenBackbone(load_pretrained_backbone())
    l = torch.rand(1, 1, 64, 96) * 100
    with torch.no_grad():
        feats = backbone(l, strides=BACKBONE_STRIDES, embed=True)
        trained_form = net(l[:, None], feats)
        enc, skips = net.encode(l, feats)
        seq, _ = net.lstm(enc.mean(dim=(2, 3))[:, None])
        args = (enc, skips, net.global_fc(feats["embed"]), seq[:, -1], l)
        plain = net.decode(*args)
        net.ab_offset.copy_(torch.tensor([1.5, -2.5]))
        net.chroma_gain.fill_(1.1)
        shown = net.decode(*args)
        assert torch.allclose(net(l[:, None], feats), trained_form)  # training never sees it
    assert torch.allclose(shown, (plain + torch.tensor([1.5, -2.5]).view(1, 2, 1, 1)) * 1.1, atol=1e-4)
    state = net.state_dict()
    torch.save(state, tmp_path / "cal.pt")
    model = create_model("lstm", weights=tmp_path / "cal.pt")
    assert torch.equal(model.net.ab_offset, torch.tensor([1.5, -2.5])) and float(model.net.chroma_gain) == pytest.approx(1.1)
    old = {k: v for k, v in state.items() if k not in ("ab_offset", "chroma_gain")}  # a file from before
    torch.save(old, tmp_path / "old.pt")
    assert torch.equal(create_model("lstm", weights=tmp_path / "old.pt").net.ab_offset, torch.zeros(2))
    assert with_calibration(state) is state


def test_semantic_scale_feeds_the_backbone_a_larger_l_and_travels_in_the_file(tmp_path):
    from colorize.models import create_model

    torch.manual_seed(0)
    net = FlowChromaNet().eval()
    net.semantic_scale.fill_(1.5)
    state = net.state_dict()
    torch.save(state, tmp_path / "scaled.pt")
    model = create_model("lstm", weights=tmp_path / "scaled.pt", overlap=False)
    assert float(model.net.semantic_scale) == 1.5
    seen = []
    backbone = model.backbone
    model.backbone = lambda x, **kw: (seen.append(tuple(x.shape[-2:])), backbone(x, **kw))[1]
    frame = torch.rand(1, 64, 96) * 100
    (_, ab), = model.push(0, frame)
    assert seen == [(96, 160)] and ab.shape[-2:] == (64, 96)  # the net's grid is the frame's
    model.reset()
    model.net.semantic_scale.fill_(1.0)
    (_, ab1), = model.push(0, frame)
    assert seen[-1] == (64, 96) and not torch.allclose(ab, ab1)
    old = {k: v for k, v in state.items() if k != "semantic_scale"}  # a file from before
    torch.save(old, tmp_path / "old.pt")
    assert float(create_model("lstm", weights=tmp_path / "old.pt").net.semantic_scale) == 1.0
