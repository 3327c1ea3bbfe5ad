"""The exemplar model: correspondence warp, confidence, recurrence, caching, loading, training."""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from colorize.color.lab import rgb_to_lab
from colorize.models import create_model, get_model_info
from colorize.models import registry
from colorize.models.backbone import FrozenBackbone, load_pretrained_backbone
from colorize.models.exemplar import (
    FAMILY,
    INFO,
    LEVELS,
    ExemplarColorizer,
    ExemplarNet,
    correlation_warp,
    normalize_features,
)
from colorize.models.registry import WeightsError
from tests.training.synthetic import smooth_image, synthetic_batch

skimage_data = pytest.importorskip("skimage.data")


def _photo_lab(name: str, size: tuple[int, int]) -> torch.Tensor:
    rgb = torch.from_numpy(getattr(skimage_data, name)()).permute(2, 0, 1)[None].float() / 255
    return rgb_to_lab(F.interpolate(rgb, size=size, mode="area"))


@pytest.fixture(scope="module")
def backbone():
    return FrozenBackbone(load_pretrained_backbone())


@pytest.fixture(scope="module")
def colorizer(backbone):
    torch.manual_seed(0)
    return ExemplarColorizer(INFO, ExemplarNet(), backbone, torch.device("cpu"), overlap=False)


def _warp(colorizer, frame_lab, ref_lab):
    with torch.inference_mode():
        code = colorizer._code(ref_lab, frame_lab.shape[-2:])
        fused = colorizer.net.corr(colorizer.backbone(frame_lab[:, :1], strides=LEVELS, embed=False))
        return colorizer.net.match(fused, code)


@pytest.mark.parametrize("name", ["chelsea", "coffee"])
def test_warp_returns_the_reference_colours_where_confident(colorizer, name):
    """An untrained net already matches: a reference onto itself, and onto a shifted view of it."""
    big = _photo_lab(name, (160, 224))
    ref = big[..., :128, :192]
    warped, conf = _warp(colorizer, ref, ref)
    assert conf.min() > 0.99
    err = (warped - F.avg_pool2d(ref[:, 1:], 8)).abs()
    assert err.mean() < 0.3 and err.max() < 3.0  # flat areas may blend near-identical neighbours

    frame = big[..., 16:144, 24:216]  # the same scene, moved by 2 x 3 grid cells
    warped, conf = _warp(colorizer, frame, ref)
    gt = F.avg_pool2d(frame[:, 1:], 8)
    err = (warped - gt).abs().mean(1)[0]
    high = conf[0, 0] > 0.8
    baseline = (gt - gt.mean(dim=(2, 3), keepdim=True)).abs().mean()  # a flat average colour
    assert high.float().mean() > 0.3
    assert err[high].mean() < 0.35 * baseline
    assert err[high].mean() < err[~high].mean()


def test_confidence_is_lower_for_unrelated_content(colorizer):
    ref = _photo_lab("chelsea", (128, 192))
    big = _photo_lab("chelsea", (160, 224))
    related = colorizer.reference_score(big[0, :1, 16:144, 24:216], ref)
    noise = colorizer.reference_score(torch.rand(1, 128, 192, generator=torch.Generator().manual_seed(0)) * 100, ref)
    other = colorizer.reference_score(_photo_lab("astronaut", (128, 192))[0, :1], ref)
    assert -1.0 <= noise < related <= 1.0
    assert related - noise > 0.2 and related - other > 0.2


def test_overlap_gives_the_same_colours_one_push_later_with_each_frames_reference(backbone):
    """With ``overlap`` the backbone runs one frame ahead in a worker thread: the same frames and
    colours (bit for bit) come back one push later, and a frame keeps the reference that was set
    when it was pushed even if another is set before it is coloured."""
    import threading

    torch.manual_seed(0)
    net = ExemplarNet()
    refs = [_photo_lab("coffee", (64, 96)), _photo_lab("chelsea", (64, 96))]
    g = torch.Generator().manual_seed(5)
    frames = [torch.rand(1, 64, 96, generator=g) * 100 for _ in range(5)]
    use = [0, 0, 1, 1, 0]  # the reference set before each push

    def run(model):
        got, counts = [], []
        for i, (l, r) in enumerate(zip(frames, use)):
            model.set_reference(refs[r])
            out = model.push(i, l)
            counts.append(len(out))
            got += out
        return got + model.flush(), counts

    plain, plain_counts = run(ExemplarColorizer(INFO, net, backbone, torch.device("cpu"), overlap=False))
    names = []
    orig = backbone.forward

    def spy(*a, **k):
        names.append(threading.current_thread().name)
        return orig(*a, **k)

    model = ExemplarColorizer(INFO, net, backbone, torch.device("cpu"), overlap=True)
    backbone.forward = spy
    try:
        got, counts = run(model)
    finally:
        del backbone.forward
    assert model.overlap and plain_counts == [1] * 5 and counts == [0] + [1] * 4
    assert [i for i, _ in got] == [i for i, _ in plain] == list(range(5))
    for (_, a), (_, b) in zip(got, plain):
        assert torch.equal(a, b)
    assert "exemplar-backbone" in " ".join(names)  # frames in the worker (references on this thread)
    model.push(0, frames[0])
    model.reset()  # drops the held frame
    assert model.flush() == []


def test_push_before_set_reference_is_refused(backbone):
    model = ExemplarColorizer(INFO, ExemplarNet(), backbone, torch.device("cpu"), overlap=False)
    with pytest.raises(RuntimeError, match="set_reference"):
        model.push(0, torch.rand(1, 32, 48) * 100)


def test_bad_inputs_are_refused(colorizer):
    colorizer.set_reference(_photo_lab("coffee", (64, 96)))
    with pytest.raises(ValueError, match="multiple of 8"):
        colorizer.push(0, torch.rand(1, 60, 96) * 100)
    with pytest.raises(ValueError, match=r"\(1, H, W\)"):
        colorizer.push(0, torch.rand(3, 64, 96) * 100)
    with pytest.raises(ValueError, match=r"\(1, 3, H, W\)"):
        colorizer.set_reference(torch.rand(3, 64, 96))
    with pytest.raises(ValueError, match="NaN"):
        colorizer.set_reference(torch.full((1, 3, 64, 64), float("nan")))


def test_shapes_range_and_no_nan(colorizer):
    colorizer.set_reference(_photo_lab("coffee", (100, 150)))  # any size: resized internally
    colorizer.reset()
    for i in range(3):
        out = colorizer.push(i, torch.rand(1, 64, 96) * 100)
        assert len(out) == 1 and out[0][0] == i
        ab = out[0][1]
        assert ab.shape == (1, 2, 64, 96) and ab.dtype == torch.float32
        assert torch.isfinite(ab).all() and ab.abs().max() <= 128
    assert colorizer.flush() == []


def test_reset_clears_the_previous_frame_but_keeps_the_reference(colorizer):
    colorizer.set_reference(_photo_lab("coffee", (64, 96)))
    a, b = (_photo_lab(n, (64, 96))[0, :1] for n in ("chelsea", "astronaut"))
    colorizer.reset()
    colorizer.push(0, a)
    after_a = colorizer.push(1, b)[0][1]
    colorizer.reset()  # no new set_reference: the reference survives a scene cut
    first = colorizer.push(2, b)[0][1]
    colorizer.reset()
    again = colorizer.push(3, b)[0][1]
    assert torch.equal(first, again)  # b as the first frame of a shot, both times
    assert (after_a - first).abs().mean() > 1e-3  # the previous frame really feeds the output


def _count_backbone_calls(colorizer, monkeypatch) -> list:
    calls = []
    forward = colorizer.backbone.forward

    def counting(l, *args, **kwargs):
        calls.append(tuple(l.shape))
        return forward(l, *args, **kwargs)

    monkeypatch.setattr(colorizer.backbone, "forward", counting)
    return calls


def test_reference_features_are_computed_once(colorizer, monkeypatch):
    calls = _count_backbone_calls(colorizer, monkeypatch)
    colorizer.set_reference(_photo_lab("coffee", (64, 96)))
    colorizer.reset()
    for i in range(4):
        colorizer.push(i, torch.rand(1, 64, 96) * 100)
    assert len(calls) == 1 + 4
    assert calls[0] == (1, 1, 64, 96)  # encoded at the frames' scale


def test_scoring_then_choosing_a_reference_encodes_it_once(colorizer, monkeypatch):
    refs = [_photo_lab(n, (72, 96)) for n in ("coffee", "astronaut")]
    frame = torch.rand(1, 64, 96) * 100
    calls = _count_backbone_calls(colorizer, monkeypatch)
    scores = [colorizer.reference_score(frame, r) for r in refs]
    assert scores == [colorizer.reference_score(frame, r) for r in refs]
    colorizer.set_reference(refs[1])
    colorizer.reset()
    colorizer.push(0, frame)
    assert len(calls) == 2 + 2 + 2 + 1  # 4 scored frames, 2 references, 1 pushed frame
    refs[1].add_(1.0)  # changed in place: encoded again
    colorizer.push(1, frame)
    assert len(calls) == 7 + 2


def test_reference_made_under_inference_mode(colorizer):
    with torch.inference_mode():  # as a runner's loop makes it
        ref = _photo_lab("coffee", (64, 96)) * 1.0
        colorizer.set_reference(ref)
        colorizer.reset()
        assert colorizer.push(0, torch.rand(1, 64, 96) * 100)[0][1].shape == (1, 2, 64, 96)
        assert -1.0 <= colorizer.reference_score(torch.rand(1, 64, 96) * 100, ref) <= 1.0


def test_stream_equals_the_training_form(backbone):
    """push() over a shot == the family's batch form (propagation mode, reference = frame 0)."""
    torch.manual_seed(1)
    net = FAMILY.build_net()
    batch = synthetic_batch(b=1, t=3, size=32, seed=3)
    lab = batch.lab
    with torch.no_grad():
        expect = FAMILY.predict(net, lab, backbone)
    model = ExemplarColorizer(INFO, net, backbone, torch.device("cpu"), overlap=False)
    model.set_reference(lab[:, 0])
    got = torch.stack([model.push(i, lab[0, i, :1])[0][1][0] for i in range(3)])
    assert torch.allclose(got, expect[0], atol=1e-3)


def test_correlation_warp_gradcheck_and_bad_shapes():
    g = torch.Generator().manual_seed(0)
    fx = torch.randn(2, 4, 2, 3, dtype=torch.float64, generator=g, requires_grad=True)
    fy = torch.randn(2, 4, 2, 2, dtype=torch.float64, generator=g, requires_grad=True)
    ab = torch.randn(2, 2, 4, dtype=torch.float64, generator=g) * 30
    fn = lambda a, b: correlation_warp(normalize_features(a), normalize_features(b), ab, tau=0.2, chunk=4)
    assert torch.autograd.gradcheck(fn, (fx, fy), fast_mode=True)
    warped, conf = fn(fx, fy)
    assert warped.shape == (2, 2, 6) and conf.shape == (2, 1, 6)
    assert warped.min() >= ab.min() - 1e-9 and warped.max() <= ab.max() + 1e-9  # a convex combination
    with pytest.raises(ValueError):
        correlation_warp(normalize_features(fx), normalize_features(fy), ab[:, :, :3])


# ------------------------------------------------------------------------- weights / registry


def test_registered_with_a_reference_contract():
    info = get_model_info("exemplar")
    assert info.needs_reference and info.weights_file == "exemplar.pt"


def _save_net(path):
    torch.manual_seed(0)
    state = ExemplarNet().state_dict()
    torch.save(state, path)
    return state


def test_strict_loading(tmp_path):
    state = _save_net(tmp_path / "ok.pt")
    model = create_model("exemplar", weights=tmp_path / "ok.pt")
    assert model.weights_sha256 == registry.sha256_file(tmp_path / "ok.pt")
    for k, v in model.net.state_dict().items():
        assert torch.equal(v, state[k])
    extra = dict(state, unexpected=torch.zeros(1))
    torch.save(extra, tmp_path / "extra.pt")
    with pytest.raises(WeightsError, match="unexpected"):
        create_model("exemplar", weights=tmp_path / "extra.pt")
    missing = {k: v for k, v in state.items() if not k.startswith("color.out")}
    torch.save(missing, tmp_path / "missing.pt")
    with pytest.raises(WeightsError, match="color.out"):
        create_model("exemplar", weights=tmp_path / "missing.pt")


def test_shipped_weights_checked_by_sha256(tmp_path, monkeypatch):
    _save_net(tmp_path / "exemplar.pt")
    record = {"exemplar": {"file": "exemplar.pt", "sha256": "0" * 64}}
    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setattr(registry, "read_manifest", lambda weights_dir=tmp_path: record)
    with pytest.raises(WeightsError, match="sha256"):
        create_model("exemplar")
    record["exemplar"]["sha256"] = registry.sha256_file(tmp_path / "exemplar.pt")
    assert create_model("exemplar").weights_sha256 == record["exemplar"]["sha256"]
    (tmp_path / "exemplar.pt").unlink()
    with pytest.raises(WeightsError, match="missing"):
        create_model("exemplar")
    record.clear()
    with pytest.raises(WeightsError, match="no shipped weights"):
        create_model("exemplar")


# ------------------------------------------------------------------------------------ training


def _moving_batch(b=2, t=3, size=48, shift=2, seed=0):
    """Clips of a colourful image panning right by ``shift`` pixels per frame, with exact flow."""
    from colorize.training.family import TrainBatch

    rng = np.random.default_rng(seed)
    clips, others = [], []
    for _ in range(b):
        wide = smooth_image(rng, size, size + shift * t)
        clips.append(np.stack([wide[:, shift * (t - 1 - i) : shift * (t - 1 - i) + size] for i in range(t)]))
        others.append(smooth_image(rng, size, size))
    rgb = torch.from_numpy(np.stack(clips)).permute(0, 1, 4, 2, 3).float() / 255
    lab = rgb_to_lab(rgb.flatten(0, 1)).unflatten(0, (b, t))
    # frame i+1 is frame i moved right: its pixel x came from x - shift in frame i
    flow = torch.zeros(b, t - 1, 2, size, size)
    flow[:, :, 0] = -shift
    valid = torch.ones(b, t - 1, 1, size, size)
    valid[..., :shift] = 0
    other = torch.from_numpy(np.stack(others)).permute(0, 3, 1, 2).float() / 255
    return TrainBatch(rgb=rgb, lab=lab, flow=flow, valid=valid, other_rgb=other)


def test_training_step_runs_and_reduces_the_loss(backbone):
    torch.manual_seed(0)
    net = FAMILY.build_net()
    batch = _moving_batch(b=2, t=2, size=32)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for i in range(6):
        out = FAMILY.training_step(net, batch, backbone, step=0)  # same step: same references
        if i == 0:
            for key in ("loss", "l1", "perceptual", "smooth", "temporal", "rank"):
                assert torch.isfinite(out[key]) and out[key].dim() == 0
            assert out["loss"].requires_grad
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
    assert min(losses[-2:]) < 0.8 * losses[0]
    grads = [p.grad for p in net.corr.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)  # the correspondence net is trained too


def test_training_step_is_reproducible_from_the_step(backbone):
    torch.manual_seed(0)
    net = FAMILY.build_net()
    batch = _moving_batch(b=1, t=2, size=32)
    a = FAMILY.training_step(net, batch, backbone, step=5)["loss"]
    b = FAMILY.training_step(net, batch, backbone, step=5)["loss"]
    assert torch.equal(a, b)


def test_predict_shape(backbone):
    lab = _moving_batch(b=2, t=3, size=32).lab
    ab = FAMILY.predict(FAMILY.build_net(), lab, backbone)
    assert ab.shape == (2, 3, 2, 32, 32) and torch.isfinite(ab).all()
