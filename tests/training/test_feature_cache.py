"""The feature cache: built once (resumably), and a cached step has the uncached step's loss."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from colorize.models.backbone import FrozenBackbone
from colorize.models.selfreg import SelfRegFamily
from colorize.training.data import ClipSampler, DataConfig, load_photos
from colorize.training.feature_cache import CachedSampler, FeatureCache, cache_spec, features_for
from tests.training.synthetic import write_photo_folder


@pytest.fixture(scope="module")
def sampler(tmp_path_factory):
    folder = write_photo_folder(tmp_path_factory.mktemp("photos"), n=4, size=80)
    return ClipSampler(load_photos([folder], short=80), [], DataConfig(size=64, window=2), seed=5)


@pytest.fixture(scope="module")
def backbone():
    torch.manual_seed(0)
    return FrozenBackbone()  # random weights are enough to compare two paths


def _build(folder, sampler, backbone, count=6, dtype="float32", **kw):
    fam = SelfRegFamily()
    return FeatureCache.build(folder, sampler, backbone, cache_spec(fam), count, {"test": 1},
                              feat_dtype=dtype, chunk=4, **kw)


@pytest.mark.parametrize("scale", [1.0, 2.0, 1.5])
def test_cached_step_has_the_uncached_loss(tmp_path, sampler, backbone, scale):
    # scale: the backbone reads the crop at that multiple of its size (family semantic_scale); the
    # cache then stores the coarse maps on the finer grids they come out at.
    fam = SelfRegFamily(semantic_scale=scale)
    cache = FeatureCache.build(tmp_path / "c", sampler, backbone, cache_spec(fam), 6, {"test": 1},
                               feat_dtype="float32", chunk=4)
    assert cache.meta.get("scale", 1.0) == scale
    torch.manual_seed(1)
    net = fam.build_net().eval()  # eval: batch norm uses running stats, the same in both calls
    assert float(net.semantic_scale) == scale
    cached = cache.batch(np.array([2, 3]))
    if scale == 2.0:  # stride 16 comes out at stride 8 of the crop, and is kept there
        assert cached.feats[16].shape[-1] == 64 // 8 and cached.feats[32].shape[-1] == 64 // 16
    plain = sampler.batch(2, 1), sampler.batch(3, 1)  # the samples the cache holds at 2 and 3
    for name in ("rgb", "flow", "valid"):
        expect = torch.cat([getattr(b, name) for b in plain])
        tol = 1 / 255 if name == "rgb" else 2e-2  # uint8 frames, float16 flow
        assert torch.allclose(getattr(cached, name), expect, atol=tol)
    uncached = cached.__class__(**{**cached.__dict__, "feats": None})
    with torch.no_grad():
        a = fam.training_step(net, cached, backbone, step=7)
        b = fam.training_step(net, uncached, backbone, step=7)
    for key in a:
        assert torch.allclose(a[key], b[key], rtol=1e-4, atol=1e-5), key


def test_cached_bilateral_neighbours_are_the_searched_ones(tmp_path, sampler, backbone):
    from colorize.training.losses import bilateral_loss, knn_pairs

    fam = SelfRegFamily(knn_samples=200, knn_k=3)
    cache = FeatureCache.build(tmp_path / "c", sampler, backbone, cache_spec(fam), 5, {"test": 1},
                               feat_dtype="float32", chunk=2)
    assert cache.arrays["knn_nbr"].shape == (10, 200, 3) and cache.arrays["knn_idx"].dtype == np.int16
    b = cache.batch(np.array([1, 4]))
    rgb = b.rgb.flatten(0, 1)
    for row, sample in enumerate((1, 1, 4, 4)):
        # the same search, seeded by the sample's index, on the frames the batch shows
        frames = rgb[2 * (row // 2): 2 * (row // 2) + 2]
        idx, nbr = knn_pairs(frames, 3, 200, 1.0, torch.Generator().manual_seed(sample))
        assert torch.equal(b.knn[0][row], idx[row % 2]) and torch.equal(b.knn[1][row], nbr[row % 2])
    # and the step's bilateral loss with them equals the loss that searches them itself
    pred = torch.randn(4, 2, 64, 64)
    searched = bilateral_loss(pred, rgb, k=3, num_samples=200, pairs=None,
                              generator=torch.Generator().manual_seed(0))
    given = bilateral_loss(pred, rgb, k=3, num_samples=200, pairs=b.knn)
    assert given > 0 and abs(float(given - searched)) / float(searched) < 0.2  # other samples, same scale
    with pytest.raises(ValueError, match="do not fit"):
        bilateral_loss(pred, rgb, k=5, pairs=b.knn)
    # A cache built with other neighbour settings is another cache.
    with pytest.raises(ValueError, match="other settings"):
        FeatureCache.build(tmp_path / "c", sampler, backbone, cache_spec(SelfRegFamily(knn_k=4, knn_samples=200)),
                           5, {"test": 1}, feat_dtype="float32", chunk=2)


def test_float16_cache_is_close_and_half_the_size(tmp_path, sampler, backbone):
    c32 = _build(tmp_path / "a", sampler, backbone, dtype="float32")
    c16 = _build(tmp_path / "b", sampler, backbone, dtype="float16")
    assert c16.arrays["embed"].nbytes * 2 == c32.arrays["embed"].nbytes
    fam = SelfRegFamily()
    torch.manual_seed(1)
    net = fam.build_net().eval()
    idx = np.array([0, 1, 4])
    with torch.no_grad():
        a = fam.training_step(net, c32.batch(idx), backbone, step=3)["loss"]
        b = fam.training_step(net, c16.batch(idx), backbone, step=3)["loss"]
    assert float((a - b).abs() / a) < 1e-2


def test_build_resumes_and_refuses_other_settings(tmp_path, sampler, backbone):
    folder = tmp_path / "c"
    calls = []
    _build(folder, sampler, backbone, count=8, progress=lambda done, total: calls.append(done))
    assert calls == [4, 8]
    meta = json.loads((folder / "meta.json").read_text())
    meta["done"] = 4  # as if interrupted after the first chunk
    (folder / "meta.json").write_text(json.dumps(meta))
    calls.clear()
    cache = _build(folder, sampler, backbone, count=8, progress=lambda done, total: calls.append(done))
    assert calls == [8] and cache.count == 8
    with pytest.raises(ValueError, match="other settings"):
        FeatureCache.build(folder, sampler, backbone, cache_spec(SelfRegFamily()), 8, {"test": 2},
                           feat_dtype="float32", chunk=4)
    with pytest.raises(ValueError, match="other settings"):
        _build(folder, sampler, backbone, count=8, dtype="float16")
    # Features of the crop read at another scale are other features, either way round.
    with pytest.raises(ValueError, match="other settings"):
        FeatureCache.build(folder, sampler, backbone, cache_spec(SelfRegFamily(semantic_scale=2.0)), 8,
                           {"test": 1}, feat_dtype="float32", chunk=4)
    FeatureCache.build(tmp_path / "s2", sampler, backbone, cache_spec(SelfRegFamily(semantic_scale=2.0)), 2,
                       {"test": 1}, feat_dtype="float32")
    with pytest.raises(ValueError, match="other settings"):
        _build(tmp_path / "s2", sampler, backbone, count=2)


def test_a_cache_grows_keeping_its_samples(tmp_path, sampler, backbone):
    small = _build(tmp_path / "c", sampler, backbone, count=5)
    before = {k: np.array(v) for k, v in small.arrays.items()}
    calls = []
    grown = _build(tmp_path / "c", sampler, backbone, count=10, progress=lambda done, total: calls.append(done))
    assert calls == [9, 10] and grown.count == 10 and grown.meta["count"] == 10
    fresh = _build(tmp_path / "f", sampler, backbone, count=10)  # built at 10 in one go
    for name, old in before.items():
        assert np.array_equal(grown.arrays[name][: len(old)], old), name  # the first five kept
        assert np.array_equal(grown.arrays[name], fresh.arrays[name]), name  # sample i is draw i
    assert not list((tmp_path / "c").glob("*.grow.npy"))
    # Asking for fewer than built uses the first ones and leaves the folder as it is.
    few = _build(tmp_path / "c", sampler, backbone, count=3)
    assert few.count == 3 and CachedSampler(few).batch(0, 8).rgb.shape[0] == 3
    assert _build(tmp_path / "c", sampler, backbone, count=10).count == 10


def test_cached_sampler_is_deterministic(tmp_path, sampler, backbone):
    s = CachedSampler(_build(tmp_path / "c", sampler, backbone), seed=2)
    a, b, c = s.batch(3, 4), s.batch(3, 4), s.batch(4, 4)
    assert torch.equal(a.rgb, b.rgb) and not torch.equal(a.rgb, c.rgb)
    assert set(a.feats) == {2, 4, 8, 16, 32, "embed"} and a.feats[2].shape[-1] == 64 // 8


def test_features_for_reads_coarse_grids():
    torch.manual_seed(0)
    bb = FrozenBackbone()
    l = torch.rand(2, 1, 64, 64) * 100
    f = features_for(bb, l, SelfRegFamily.feature_spec)
    assert f[2].shape == (2, 16, 8, 8) and f[32].shape == (2, 320, 2, 2) and f["embed"].shape == (2, 1280)
    # At scale 2 the backbone reads 128 px: the maps read on their own grids come out twice as
    # fine (stride 32 at 4x4), except that none is kept finer than the finest grid (stride 16 at 8x8).
    f2 = features_for(bb, l, replace(SelfRegFamily.feature_spec, scale=2.0))
    assert f2[2].shape == (2, 16, 8, 8) and f2[16].shape == (2, 112, 8, 8) and f2[32].shape == (2, 320, 4, 4)
    expect = bb(torch.nn.functional.interpolate(l, size=(128, 128), mode="bilinear"), strides=(32,), embed=True)
    assert torch.allclose(f2[32], expect[32], atol=1e-5) and torch.allclose(f2["embed"], expect["embed"], atol=1e-5)


@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_lstm_cached_step_has_the_uncached_loss(tmp_path, backbone, scale):
    from colorize.models.lstm import LSTMFamily
    from tests.training.synthetic import write_photo_folder as wpf

    folder = wpf(tmp_path / "p", n=3, size=80)
    fam = LSTMFamily()
    fam.semantic_scale = scale  # an instance setting, as colorize train --set semantic_scale=2 makes it
    s = ClipSampler(load_photos([folder], short=80), [], DataConfig(size=64, window=fam.window), seed=1)
    cache = FeatureCache.build(tmp_path / "c", s, backbone, cache_spec(fam), 3, {"t": 1}, feat_dtype="float32")
    torch.manual_seed(0)
    net = fam.build_net().eval()
    assert float(net.semantic_scale) == scale
    cached = cache.batch(np.array([0, 2]))
    uncached = cached.__class__(**{**cached.__dict__, "feats": None})
    with torch.no_grad():
        a, b = fam.training_step(net, cached, backbone, 0), fam.training_step(net, uncached, backbone, 0)
    for key in a:
        assert torch.allclose(a[key], b[key], rtol=1e-4, atol=1e-6), key
