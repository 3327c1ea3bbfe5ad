"""The official DEVC checkpoints: strict loading, and the fixture of the unmodified official code
reproduced stage by stage and end to end (teacher-forced), in both modes.

The fixture (tests/models/data/devc/, README.md there) records the official ``test.py`` run with
deterministic random weights; tests/devc_recipe.py regenerates those weights with numpy.
Tolerances are the fixture README's section 5.
"""

from __future__ import annotations

import copy
import json
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from colorize.color.lab import rgb_to_lab
from colorize.models import create_model, get_model_info
from colorize.models import devc as D
from colorize.models.devc_smoother import fast_global_smoother, fgs_numpy, has_ximgproc
from colorize.models.registry import WeightsError, sha256_file
from tests.devc_recipe import FILES, KEYS_JSON, write_recipe_weights

FIXTURE = KEYS_JSON.parent / "devc_reference.npz"
MODES = ("ref/", "propagate/")
GAP = 1e-4  # near-tie margin of the hard-argmax warp (README section 5)


@pytest.fixture(scope="module", autouse=True)
def _threads():
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def z():
    return np.load(FIXTURE)


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    return write_recipe_weights(tmp_path_factory.mktemp("devc_weights"))


@pytest.fixture(scope="module")
def recipe_model(weights_dir):
    """The recipe files loaded once, through the registry, as a user's files are."""
    return create_model("devc", weights=weights_dir)


@pytest.fixture(scope="module")
def nets(recipe_model):
    """The loaded networks (float32, eval, no grad), shared by the tests that build their own
    stream model around them. Nothing may change them in place (half precision copies them)."""
    return recipe_model.vgg, recipe_model.warpnet, recipe_model.colornet


def _f16_ok(ours: torch.Tensor, stored: np.ndarray) -> float:
    """max |ours - stored| over the stored channels, in units of max |stored| (tolerance 1e-3)."""
    ref = stored.astype(np.float32)
    d = np.abs(ours[:, : ref.shape[1]].numpy() - ref).max()
    return float(d / np.abs(ref).max())


def _tie_mask(z, p: str) -> np.ndarray:
    """(n, 1, 72, 128) True where the query's top-1/top-2 gap is safe (>= 1e-4)."""
    ok = (z[p + "corr_top1_minus_top2"] >= GAP).reshape(-1, 1, 18, 32)
    return np.repeat(np.repeat(ok, 4, 2), 4, 3)


# ------------------------------------------------------------------------------- keys and loading


def test_state_dict_keys_and_shapes_are_the_official_ones():
    spec = json.loads(KEYS_JSON.read_text())
    with torch.device("meta"):  # shapes only: no memory, no random initialisation
        built = (("vgg19_conv", D.VGG19Conv()), ("nonlocal_net", D.WarpNet()), ("colornet", D.ColorVidNet()))
    for ckpt, net in built:
        ours = [[k, list(v.shape)] for k, v in net.state_dict().items()]
        assert ours == spec[ckpt]["keys"], ckpt


def test_recipe_weights_load_strictly_with_provenance(weights_dir, recipe_model):
    model = recipe_model
    assert set(model.weights_files) == set(FILES.values())
    for name, rec in model.weights_files.items():
        assert rec["sha256"] == sha256_file(weights_dir / name)
        assert rec["sha256_verified"] is False  # the official release's hashes are not known
    assert model.weights_sha256 == D.combined_sha256(model.weights_files)
    info = get_model_info("devc")
    assert info.needs_reference and info.size_multiple == 16 and info.default_render_size == 432


def test_weights_from_environment_and_official_layout(weights_dir, tmp_path, monkeypatch):
    repo = tmp_path / "Deep-Exemplar-based-Video-Colorization"
    (repo / "data").mkdir(parents=True)
    (repo / "checkpoints" / "video_moredata_l1").mkdir(parents=True)
    (repo / "data" / FILES["vgg19_conv"]).symlink_to(weights_dir / FILES["vgg19_conv"])
    for ck in ("nonlocal_net", "colornet"):
        (repo / "checkpoints" / "video_moredata_l1" / FILES[ck]).symlink_to(weights_dir / FILES[ck])
    monkeypatch.setenv(D.WEIGHTS_ENV, str(repo))
    found = D.resolve_weights_dir(None)
    assert found["colornet"].parent.name == "video_moredata_l1"


def test_missing_weights_name_the_files_and_the_official_project(tmp_path, monkeypatch, weights_dir):
    monkeypatch.delenv(D.WEIGHTS_ENV, raising=False)
    with pytest.raises(WeightsError) as exc:
        create_model("devc")
    msg = str(exc.value)
    for name in FILES.values():
        assert name in msg
    assert "zhangmozhe/Deep-Exemplar-based-Video-Colorization" in msg and "releases" in msg
    assert D.WEIGHTS_ENV in msg
    (tmp_path / FILES["vgg19_conv"]).symlink_to(weights_dir / FILES["vgg19_conv"])
    with pytest.raises(WeightsError, match="lacks nonlocal_net_iter_76000.pth, colornet_iter_76000.pth"):
        D.resolve_weights_dir(tmp_path)
    with pytest.raises(WeightsError, match="not a folder"):
        D.resolve_weights_dir(weights_dir / FILES["colornet"])


def _folder_with(tmp_path, weights_dir, ckpt, write):
    for ck, name in FILES.items():
        if ck != ckpt:
            (tmp_path / name).symlink_to(weights_dir / name)
    write(tmp_path / FILES[ckpt])
    return tmp_path


def test_loading_is_strict(tmp_path, weights_dir):
    state = torch.load(weights_dir / FILES["nonlocal_net"], weights_only=True)
    del state["theta.bias"]
    folder = _folder_with(tmp_path, weights_dir, "nonlocal_net", lambda p: torch.save(state, p))
    with pytest.raises(WeightsError, match="theta.bias"):
        D.load_devc_networks(folder)


def test_loading_is_weights_only(tmp_path, weights_dir):
    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    folder = _folder_with(tmp_path, weights_dir, "nonlocal_net",
                          lambda p: p.write_bytes(pickle.dumps({"theta.weight": Evil()})))
    with pytest.raises(WeightsError, match="cannot read"):
        D.load_devc_networks(folder)


def test_known_sha256_is_enforced(weights_dir, monkeypatch):
    monkeypatch.setitem(D.KNOWN_SHA256, FILES["nonlocal_net"], "0" * 64)
    with pytest.raises(WeightsError, match="sha256"):
        D.load_devc_networks(weights_dir)


# -------------------------------------------------------------------------------- stage by stage


@pytest.mark.parametrize("p", MODES)
def test_preprocessing_stages(z, p):
    skt = pytest.importorskip("skimage.transform")

    def sk_resize(img, size):
        return skt.resize(img, size, mode="reflect", preserve_range=True, clip=False, anti_aliasing=True)

    frames = z[p + "frames_u8"]
    pads = np.stack([D.center_pad(f, (144, 256), sk_resize) for f in frames])
    assert np.array_equal(pads, z[p + "frames_centerpad_u8"])
    # the default torch port of skimage's resize: equal up to float64 rounding before truncation
    d = np.abs(np.stack([D.center_pad(f, (144, 256)) for f in frames]).astype(int) - pads)
    assert d.max() <= 1 and (d > 0).mean() <= 0.01
    l_large = D.official_rgb_to_lab(torch.from_numpy(pads))[:, :1] - 50
    assert (l_large - torch.from_numpy(z[p + "frames_L_large"])).abs().max() <= 1e-4
    if p == "ref/":
        ref_pad = D.center_pad(z[p + "ref_u8"], (144, 256), sk_resize)
        assert np.array_equal(ref_pad, z[p + "ref_centerpad_u8"])
        lab = D.official_rgb_to_lab(torch.from_numpy(ref_pad))[None]
        lab[:, :1] -= 50
        assert (lab - torch.from_numpy(z[p + "ref_lab_large"])).abs().max() <= 1e-4
    ia = F.interpolate(torch.from_numpy(z[p + "frames_L_large"]), size=(72, 128), mode="bilinear")
    assert (ia - torch.from_numpy(z[p + "IA_L"])).abs().max() <= 1e-5
    ib_lab = torch.from_numpy(z[p + "IB_lab"])
    rgb = D.tensor_lab2rgb(torch.cat((ib_lab[:, :1] + 50, ib_lab[:, 1:]), 1))
    assert (rgb - torch.from_numpy(z[p + "ref_rgb_for_vgg"])).abs().max() <= 1e-5


@pytest.mark.parametrize("p", MODES)
def test_vgg_warpnet_and_warp_stages(z, nets, p):
    vgg, warpnet, _ = nets
    with torch.inference_mode():
        feats_b = vgg(torch.from_numpy(z[p + "ref_rgb_for_vgg"]))
        feats_a = vgg(((torch.from_numpy(z[p + "IA_L"]) + 50) / 100).expand(3, 3, 72, 128))
        for i, name in enumerate(("r22", "r32", "r42", "r52")):
            assert _f16_ok(feats_b[i], z[p + "vgg_ref_" + name]) <= 1e-3, name
            assert _f16_ok(feats_a[i], z[p + "vgg_frames_" + name]) <= 1e-3, name
        inner = {}
        hooks = [getattr(warpnet, n).register_forward_hook(lambda m, i, o, n=n: inner.setdefault(n, []).append(o))
                 for n in ("layer2_1", "layer3_1", "layer4_1", "layer5_1", "layer")]
        fa = warpnet.features(*feats_a)
        fb = warpnet.features(*feats_b)
        for h in hooks:
            h.remove()
        for name, (out_a, out_b) in inner.items():
            assert _f16_ok(out_a, z[p + "warpnet_A_" + name]) <= 1e-3, name
            assert _f16_ok(out_b, z[p + "warpnet_B_" + name]) <= 1e-3, name
        assert _f16_ok(warpnet.theta(fa), z[p + "theta"]) <= 1e-3
        assert _f16_ok(warpnet.phi(fb), z[p + "phi"]) <= 1e-3
        theta = D.WarpNet.embed(warpnet.theta, fa)
        phi = D.WarpNet.embed(warpnet.phi, fb)
        corr = theta.transpose(1, 2) @ phi[0]
        safe = z[p + "corr_top1_minus_top2"] >= GAP
        assert np.array_equal(corr.argmax(-1).numpy()[safe], z[p + "corr_argmax"][safe])
        pooled = F.avg_pool2d(torch.from_numpy(z[p + "IB_lab"]), 4).flatten(2)[0].T.contiguous()
        warped, sim = D.warp_reference(theta, phi, pooled, chunk=200)  # chunks straddle rows
    sim = F.interpolate(sim.reshape(3, 1, 18, 32), scale_factor=4)
    assert (sim - torch.from_numpy(z[p + "similarity_map"])).abs().max() <= 1e-5
    warped = F.interpolate(warped.transpose(1, 2).reshape(3, 3, 18, 32), scale_factor=4).numpy()
    assert (np.abs(warped - z[p + "warped_lab"]) * _tie_mask(z, p)).max() <= 1e-4


def test_warp_ties_share_weight_like_the_official_softmax():
    theta = F.normalize(torch.randn(1, 4, 5), dim=1)
    phi = torch.cat((theta[:, :, :2], theta[:, :, :2], -theta[:, :, :1]), dim=2)  # exact duplicates
    pooled = torch.randn(5, 3)
    warped, sim = D.warp_reference(theta, phi, pooled)
    official = torch.softmax((theta.transpose(1, 2) @ phi[0]) / D.TEMPERATURE, dim=-1) @ pooled
    assert torch.allclose(warped[0], official[0], atol=1e-6)
    assert torch.allclose(warped[0, 0], (pooled[0] + pooled[2]) / 2, atol=1e-6)


@pytest.mark.parametrize("shape", [(1, 5, 4, 6), (2, 3, 7, 5), (1, 8, 1, 1)])
def test_upsample_conv_shortcut_equals_the_official_nearest_upsample_then_conv(shape):
    g = torch.Generator().manual_seed(sum(shape))
    conv = torch.nn.Conv2d(shape[1], 6, 3, padding=1)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g))
        x = torch.randn(shape, generator=g)
        official = conv(torch.nn.Upsample(scale_factor=2, mode="nearest")(x))
        ours = D.upsample2_conv3(x, conv)
    assert ours.shape == official.shape
    assert torch.allclose(ours, official, atol=1e-5, rtol=1e-5)


def test_subsample_equals_the_official_strided_depthwise_conv():
    ss = torch.nn.Conv2d(4, 4, 1, 2, bias=False, groups=4)
    x = torch.randn(2, 4, 7, 10)
    with torch.no_grad():
        assert torch.equal(D.ColorVidNet._subsample(x, ss), ss(x))


@pytest.mark.parametrize("p", MODES)
def test_colornet_stage_teacher_forced(z, nets, p):
    cin = np.concatenate([z[p + "IA_L"], z[p + "warped_lab"][:, 1:3], z[p + "similarity_map"],
                          z[p + "I_last_lab_in"]], axis=1)
    with torch.inference_mode():
        ab = nets[2](torch.from_numpy(cin)).numpy()
    d = np.abs(ab - z[p + "ab_predict"])
    assert d.max() <= 3e-2 and d.mean() <= 3e-3


@pytest.mark.parametrize("p", MODES)
def test_postprocessing_stages(z, p):
    ab_up = F.interpolate(torch.from_numpy(z[p + "ab_predict"]), scale_factor=2, mode="bilinear") * 1.25
    assert _f16_ok(ab_up, z[p + "ab_up_x1.25"]) <= 1e-3
    l_large = torch.from_numpy(z[p + "frames_L_large"])
    guide = ((l_large[:, 0] + 50.0) * 255 / 100).to(torch.uint8).numpy()
    assert np.array_equal(guide, z[p + "wls_guide_u8"])
    for k in range(3):
        out = fgs_numpy(guide[k], ab_up[k].numpy())
        assert np.abs(out - z[p + "ab_wls"][k]).max() == 0  # the port is bit-exact
    lab = torch.cat((l_large + 50, torch.from_numpy(z[p + "ab_wls"])), 1)
    rgb = D.official_lab_to_rgb_u8(lab).numpy().astype(int)
    d = np.abs(rgb - z[p + "rgb_final"])
    assert d.max() <= 1 and (d > 0).mean() <= 0.005


@pytest.mark.skipif(not has_ximgproc(), reason="opencv-contrib (cv2.ximgproc) not installed")
def test_smoother_opencv_contrib_matches_fixture(z):
    p = "ref/"
    ab_up = F.interpolate(torch.from_numpy(z[p + "ab_predict"]), scale_factor=2, mode="bilinear") * 1.25
    for k in range(3):
        out = fast_global_smoother(z[p + "wls_guide_u8"][k], ab_up[k].numpy(), backend="opencv")
        assert np.abs(out - z[p + "ab_wls"][k]).max() <= 5e-3


def test_smoother_rejects_bad_input():
    with pytest.raises(ValueError):
        fgs_numpy(np.zeros((8, 8), np.float32), np.zeros((8, 8), np.float32))
    with pytest.raises(ValueError):
        fgs_numpy(np.zeros((8, 8), np.uint8), np.zeros((2, 8, 9), np.float32))
    with pytest.raises(ValueError):
        fast_global_smoother(np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.float32), backend="nope")


# ---------------------------------------------------------------------- end to end, stream model


def _stream_model(nets, p, **kw):
    skt = pytest.importorskip("skimage.transform")

    def sk_resize(img, size):
        return skt.resize(img, size, mode="reflect", preserve_range=True, clip=False, anti_aliasing=True)

    vgg, warpnet, colornet = nets
    return D.DEVCColorizer(vgg, warpnet, colornet, propagate=(p == "propagate/"), resize=sk_resize,
                           smoother_backend="numpy", **kw)


def _ref_lab(z, p):
    ref_u8 = z[p + "ref_u8"] if p == "ref/" else z[p + "frames_u8"][0]
    return rgb_to_lab(torch.from_numpy(ref_u8 / 255.0).permute(2, 0, 1)[None].float())


def _frames_l(z, p):
    """The official L (float32 of skimage's float64 L) of the centre-padded frames: (n, 1, 144, 256)."""
    return D.official_rgb_to_lab(torch.from_numpy(z[p + "frames_centerpad_u8"]))[:, :1]


@pytest.mark.parametrize("p", MODES)
def test_end_to_end_teacher_forced(z, nets, p):
    model = _stream_model(nets, p)
    model.set_reference(_ref_lab(z, p))
    seen = []
    hook = model.colornet.register_forward_hook(lambda m, i, o: seen.append((i[0].clone(), o.clone())))
    l_large = _frames_l(z, p)
    mask = _tie_mask(z, p)
    try:
        for k in range(3):
            if k > 0:  # teacher forcing: the official previous-frame tensor
                model._last = torch.from_numpy(z[p + "I_last_lab_in"][k:k + 1])
            [(index, ab)] = model.push(k, l_large[k])
            assert index == k and ab.shape == (1, 2, 144, 256) and ab.dtype == torch.float32
            x, ab_predict = seen[-1]
            # the model's own first-frame state: zeros (ref) or the reference's Lab (propagate)
            assert (x[:, 4:] - torch.from_numpy(z[p + "I_last_lab_in"][k:k + 1])).abs().max() <= 1e-5
            assert (x[:, :1] - torch.from_numpy(z[p + "IA_L"][k:k + 1])).abs().max() <= 1e-5
            assert (x[:, 3:4] - torch.from_numpy(z[p + "similarity_map"][k:k + 1])).abs().max() <= 1e-5
            warped = np.abs(x[:, 1:3].numpy() - z[p + "warped_lab"][k:k + 1, 1:3]) * mask[k:k + 1]
            assert warped.max() <= 1e-4
            d = (ab_predict - torch.from_numpy(z[p + "ab_predict"][k:k + 1])).abs()
            assert d.max() <= 3e-2 and d.mean() <= 3e-3
            assert (ab - torch.from_numpy(z[p + "ab_wls"][k:k + 1])).abs().max() <= 3e-2
            rgb = D.official_lab_to_rgb_u8(torch.cat((l_large[k:k + 1], ab), 1)).numpy().astype(int)
            diff = np.abs(rgb - z[p + "rgb_final"][k:k + 1])
            assert diff.max() <= 1 and (diff > 0).mean() <= 0.005
    finally:
        hook.remove()


@pytest.fixture(scope="module")
def stream_runs(z, nets):
    """The stream model in reference mode without the smoother, run once for several tests:
    ``boosted`` (default x1.25) free-running over frames 0, 1;
    ``plain`` (saturation_boost=False) frame 0; then ``boosted`` again after reset() with
    batch_size=2 over frames 0, 1 (reset keeps the reference: no second reference pass)."""
    p = "ref/"
    l_large = _frames_l(z, p)
    runs = {}
    boosted = _stream_model(nets, p, smoother=False)
    boosted.set_reference(_ref_lab(z, p))
    runs["boosted"] = [boosted.push(0, l_large[0])]
    runs["state_after_0"] = boosted._last.clone()
    runs["boosted"].append(boosted.push(1, l_large[1]))
    plain = _stream_model(nets, p, smoother=False, saturation_boost=False)
    plain.set_reference(_ref_lab(z, p))
    runs["plain"] = plain.push(0, l_large[0])
    boosted.reset()
    boosted.batch_size = 2
    runs["batched"] = [boosted.push(0, l_large[0]), boosted.push(1, l_large[1]), boosted.flush()]
    return runs


def test_free_running_recurrence_follows_the_official_one(z, stream_runs):
    """Not teacher-forced: the model's own previous frame (raw ab, not x1.25, not smoothed)."""
    p = "ref/"
    [(i0, ab0)] = stream_runs["plain"]
    [(i1, ab1_boosted)] = stream_runs["boosted"][1]
    assert (i0, i1) == (0, 1)
    # without smoother or boost the output is the bilinear x2 of ab_predict
    want0 = F.interpolate(torch.from_numpy(z[p + "ab_predict"][:1]), scale_factor=2, mode="bilinear")
    assert (ab0 - want0).abs().max() <= 3e-2
    # the state fed back is the raw network output even with the boost on
    state = stream_runs["state_after_0"]
    assert (state - torch.from_numpy(z[p + "I_last_lab_in"][1:2])).abs().max() <= 3e-2
    want1 = F.interpolate(torch.from_numpy(z[p + "ab_predict"][1:2]), scale_factor=2, mode="bilinear")
    assert (ab1_boosted / D.SATURATION_BOOST - want1).abs().max() <= 1.0  # README: float noise grows 25-50x per free-running frame


def test_no_saturation_boost_divides_the_output_by_1_25(stream_runs):
    # exactly the official output divided by 1.25 (before the smoother)
    boosted0 = stream_runs["boosted"][0][0][1]
    assert D.SATURATION_BOOST == 1.25
    assert torch.allclose(stream_runs["plain"][0][1] * 1.25, boosted0, atol=1e-4)


def test_batching_holds_frames_back_and_matches_one_by_one(stream_runs):
    outs = [r[0][1] for r in stream_runs["boosted"]]
    held, got, flushed = stream_runs["batched"]
    assert held == []  # held back for the batch
    assert [i for i, _ in got] == [0, 1]
    assert (got[0][1] - outs[0]).abs().max() <= 1e-2  # other conv kernels for a batch of 2
    assert (got[1][1] - outs[1]).abs().max() <= 0.5  # free-running: float noise grows 25-50x per frame
    assert flushed == []


def test_padding_own_aspect_reference_half_and_reset(z, nets):
    # in one model (each costs a full pass of the networks): the smallest frame the networks take,
    # at a working size the official code refuses (25x34: padded to 32x48 and cropped back), the
    # reference's own aspect kept, half precision. Shapes right, values finite and in range.
    p = "ref/"
    odd = F.interpolate(_frames_l(z, p)[:1], size=(50, 68), mode="bilinear")[0]
    m = _stream_model(copy.deepcopy(nets), p, crop_reference=False, dtype=torch.float16)
    m.set_reference(_ref_lab(z, p))
    [(_, ab)] = m.push(0, odd)
    assert ab.shape == (1, 2, 50, 68) and ab.dtype == torch.float32
    assert torch.isfinite(ab).all() and ab.abs().max() <= 128 * 1.25
    # reset forgets the recurrence: frame 0 again gives frame 0's output
    m.reset()
    assert torch.equal(m.push(0, odd)[0][1], ab)
    with pytest.raises(ValueError, match="too small"):
        m.push(1, odd[:, :48])


def test_stream_contract_errors(nets):
    model = D.DEVCColorizer(*nets)
    with pytest.raises(ValueError, match="reference"):
        model.push(0, torch.full((1, 64, 64), 50.0))
    with pytest.raises(ValueError):
        model.set_reference(torch.zeros(3, 8, 8))
    with pytest.raises(ValueError):
        model.push(0, torch.zeros(32, 64))
    with pytest.raises(ValueError):
        D.DEVCColorizer(*nets, batch_size=0)
