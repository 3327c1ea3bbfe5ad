"""A cache of frozen-backbone features per augmented training sample, so a step runs only the
small networks.

The backbone never trains, so its features of a given augmented crop never change. The cache
draws ``count`` samples from an ordinary :class:`~colorize.training.data.ClipSampler` (photos with
synthetic motion and real clips, windows of the family's length, the sampler's own deterministic
draws), computes the backbone features of every frame once and stores everything in a folder
outside the repository as memory-mapped ``.npy`` arrays:

    rgb    (N, T, 3, S, S) uint8      the frames
    flow   (N, T-1, 2, S, S) float16  backward flow (see TrainBatch)
    valid  (N, T-1, 1, S, S) uint8
    feat_K (N * T, C, h, w)           one array per feature key of the family's ``feature_spec``,
                                      already resampled to the grid the family reads it on
    embed  (N * T, 1280)
    knn_idx (N * T, S_k) int16/32     with ``spec.knn``: each frame's bilateral nearest neighbours
    knn_nbr (N * T, S_k, k)           (losses.knn_pairs on the stored uint8 frames, seeded by the
                                      sample's index), so a step skips that search too

``meta.json`` records the settings and how many samples are done, so building resumes after an
interruption, and a finished cache can be grown: asking for more samples with the same settings
keeps the samples already built (sample i is always the sampler's draw i) and appends the rest.
The feature dtype is float16 by default (half the disk and memory traffic; the training loss
changes by ~1e-3 relative); float32 reproduces the uncached loss exactly.

A :class:`CachedSampler` then draws batches from the cache, deterministically from
``(seed, step)`` like the uncached sampler, with the features attached (``TrainBatch.feats``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from dataclasses import replace

import numpy as np
import torch

from colorize.color.lab import rgb_to_lab
from colorize.models.backbone import FeatureSpec, semantic_input
from colorize.training.losses import knn_pairs
from colorize.models.layers import resize_to
from colorize.training.family import TrainBatch

VERSION = 1


def features_for(backbone, l: torch.Tensor, spec: FeatureSpec) -> dict:
    """The family's view of the backbone features of L (N, 1, S, S): {stride: map, "embed": vec}."""
    feats = backbone(semantic_input(l, spec.scale), strides=spec.strides, embed=spec.embed)
    size = l.shape[-2:]
    finest = min(g for _, g in spec.grids)
    out = {}
    for s, g in spec.grids:
        if g > s:  # read on a coarser grid than its own
            out[s] = resize_to(feats[s], (size[0] // g, size[1] // g))
        else:  # read on its own grid, which a semantic scale makes finer, but never finer than the finest read
            own = feats[s].shape[-2:]
            out[s] = resize_to(feats[s], (min(own[0], size[0] // finest), min(own[1], size[1] // finest)))
    if spec.embed:
        out["embed"] = feats["embed"]
    return out


def cache_spec(family) -> FeatureSpec | None:
    """What a cache stores for ``family``: its ``feature_spec``, plus its bilateral neighbour
    settings (``knn_spec``) where its loss has that term. None: the family cannot use a cache."""
    spec = getattr(family, "feature_spec", None)
    knn = getattr(family, "knn_spec", None)
    scale = float(getattr(family, "semantic_scale", 1.0))
    if spec is not None and scale != spec.scale:
        spec = replace(spec, scale=scale)
    if spec is None or knn is None:
        return spec
    return replace(spec, knn=tuple(knn))


def sample_knn(rgb: torch.Tensor, knn: tuple[int, int, float], sample: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Bilateral neighbours (idx (T, S), nbr (T, S, k)) of one sample's frames rgb (T, 3, H, W),
    drawn with a generator seeded by the sample's index (so a cache's row does not depend on how
    it was built: in chunks, resumed or grown)."""
    k, samples, lam = knn
    return knn_pairs(rgb, int(k), int(samples), float(lam), torch.Generator().manual_seed(int(sample)))


def _open(path: Path, mode: str, dtype=None, shape=None) -> np.ndarray:
    if mode == "w":
        return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    return np.load(path, mmap_mode=mode)


class FeatureCache:
    """A folder of cached samples (see the module docstring)."""

    def __init__(self, folder: str | Path, limit: int | None = None) -> None:
        """``limit``: use only the first ``limit`` samples (a cache built larger than asked for)."""
        self.folder = Path(folder)
        self.limit = limit
        meta_path = self.folder / "meta.json"
        if not meta_path.exists():
            raise FileNotFoundError(f"no feature cache in {self.folder}")
        self.meta = json.loads(meta_path.read_text())
        self.arrays = {name: _open(self.folder / f"{name}.npy", "r") for name in self.meta["arrays"]}

    @property
    def count(self) -> int:
        """Samples finished (a partly built cache is usable up to here)."""
        done = int(self.meta["done"])
        return done if self.limit is None else min(done, self.limit)

    @staticmethod
    def build(folder: str | Path, sampler, backbone, spec: FeatureSpec, count: int, settings: dict,
              feat_dtype: str = "float16", chunk: int = 16, progress=None) -> "FeatureCache":
        """Create (or resume) a cache of ``count`` samples drawn by ``sampler`` (sample i is
        ``sampler.batch(i, 1)``). ``settings`` (data, size, seed...) must match on resume: a
        different configuration is refused rather than mixed in. A larger ``count`` than the
        cache was built with grows it (the samples built are kept); a smaller one uses the first
        ``count`` samples."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        meta_path = folder / "meta.json"
        key = {"version": VERSION, "settings": settings, "count": count, "feat_dtype": feat_dtype,
               "spec": [list(g) for g in spec.grids], "embed": spec.embed,
               "knn": list(spec.knn) if spec.knn is not None else None}
        if spec.scale != 1.0:  # (caches at scale 1 predate the key)
            key["scale"] = spec.scale
        if meta_path.exists():
            meta = json.loads(meta_path.read_text())
            same = {k: meta.get(k) for k in key if k != "count"} == {k: v for k, v in key.items() if k != "count"}
            same = same and float(meta.get("scale", 1.0)) == spec.scale
            if not same:
                raise ValueError(f"feature cache {folder} was built with other settings; use another folder")
            if count > meta["count"]:
                _grow(folder, meta, count)
        else:
            probe = sampler.batch(0, 1)
            t, s = probe.rgb.shape[1], probe.rgb.shape[-1]
            with torch.no_grad():
                feats = features_for(backbone, probe.lab[0, :, :1], spec)
            shapes = {
                "rgb": ((count, t, 3, s, s), "uint8"),
                "flow": ((count, t - 1, 2, s, s), "float16"),
                "valid": ((count, t - 1, 1, s, s), "uint8"),
            }
            for k, v in feats.items():
                shapes[_feat_name(k)] = ((count * t, *v.shape[1:]), feat_dtype)
            if spec.knn is not None:
                idx, nbr = sample_knn(probe.rgb[0], spec.knn, 0)
                itype = "int16" if s * s <= np.iinfo(np.int16).max else "int32"
                shapes["knn_idx"] = ((count * t, idx.shape[1]), itype)
                shapes["knn_nbr"] = ((count * t, *nbr.shape[1:]), itype)
            for name, (shape, dtype) in shapes.items():
                _open(folder / f"{name}.npy", "w", dtype, shape).flush()
            meta = {**key, "done": 0, "window": t, "size": s, "arrays": sorted(shapes), "seconds": 0.0}
            _write_json(meta_path, meta)
        arrays = {name: _open(folder / f"{name}.npy", "r+") for name in meta["arrays"]}
        t = meta["window"]
        done = meta["done"]
        while done < count:
            t0 = time.perf_counter()
            n = min(chunk, count - done)
            batches = [sampler.batch(done + i, 1) for i in range(n)]
            rgb = torch.cat([b.rgb for b in batches])
            lab = torch.cat([b.lab for b in batches])
            with torch.no_grad():
                feats = features_for(backbone, lab.flatten(0, 1)[:, :1], spec)
            sl, fsl = slice(done, done + n), slice(done * t, (done + n) * t)
            arrays["rgb"][sl] = (rgb * 255.0).round().clamp(0, 255).to(torch.uint8).numpy()
            arrays["flow"][sl] = torch.cat([b.flow for b in batches]).to(torch.float16).numpy()
            arrays["valid"][sl] = torch.cat([b.valid for b in batches]).to(torch.uint8).numpy()
            for k, v in feats.items():
                arrays[_feat_name(k)][fsl] = v.numpy().astype(feat_dtype)
            if "knn_idx" in arrays:
                stored = torch.from_numpy(arrays["rgb"][sl]).float().div_(255.0)  # what batches will show
                pairs = [sample_knn(stored[i], meta["knn"], done + i) for i in range(n)]
                arrays["knn_idx"][fsl] = torch.cat([p[0] for p in pairs]).numpy()
                arrays["knn_nbr"][fsl] = torch.cat([p[1] for p in pairs]).numpy()
            for a in arrays.values():
                a.flush()
            done += n
            meta["done"] = done
            meta["seconds"] = meta.get("seconds", 0.0) + time.perf_counter() - t0
            _write_json(meta_path, meta)
            if progress:
                progress(done, count)
        return FeatureCache(folder, limit=count)

    def batch(self, indices: np.ndarray, device: torch.device = torch.device("cpu")) -> TrainBatch:
        """The samples ``indices`` as a TrainBatch with ``feats`` (float32) attached."""
        idx = np.sort(np.asarray(indices))  # sorted reads are kinder to the page cache
        t = self.meta["window"]
        rgb = torch.from_numpy(np.ascontiguousarray(self.arrays["rgb"][idx])).float().div_(255.0)
        b = rgb.shape[0]
        lab = rgb_to_lab(rgb.flatten(0, 1)).view(b, t, 3, *rgb.shape[-2:])
        fidx = (idx[:, None] * t + np.arange(t)[None]).reshape(-1)
        feats = {}
        for name in self.meta["arrays"]:
            if name.startswith("feat_") or name == "embed":
                arr = torch.from_numpy(np.ascontiguousarray(self.arrays[name][fidx])).float()
                feats[_feat_key(name)] = arr.to(device)
        knn = None
        if "knn_idx" in self.arrays:
            knn = tuple(torch.from_numpy(np.ascontiguousarray(self.arrays[name][fidx])).long().to(device)
                        for name in ("knn_idx", "knn_nbr"))
        return TrainBatch(
            rgb=rgb.to(device), lab=lab.to(device),
            flow=torch.from_numpy(np.ascontiguousarray(self.arrays["flow"][idx])).float().to(device),
            valid=torch.from_numpy(np.ascontiguousarray(self.arrays["valid"][idx])).float().to(device),
            other_rgb=rgb[:, 0].to(device),
            feats=feats,
            knn=knn,
        )


class CachedSampler:
    """Draws batches from a :class:`FeatureCache`, deterministic given (seed, step)."""

    def __init__(self, cache: FeatureCache, seed: int = 0) -> None:
        if cache.count < 1:
            raise ValueError(f"feature cache {cache.folder} is empty")
        self.cache = cache
        self.seed = seed

    def batch(self, step: int, batch_size: int, device: torch.device = torch.device("cpu")) -> TrainBatch:
        rng = np.random.default_rng([self.seed, step, 7])
        idx = rng.choice(self.cache.count, size=min(batch_size, self.cache.count), replace=False)
        return self.cache.batch(idx, device)


def _grow(folder: Path, meta: dict, count: int) -> None:
    """Enlarge every array of a cache to ``count`` samples, keeping the rows already there.

    Each array is copied into a larger file that then replaces it (rename), and meta.json is
    written last: an interruption leaves either the old cache or a larger one whose new rows are
    built on the next call ("done" still counts the old rows only).
    """
    t = meta["window"]
    for name in meta["arrays"]:
        src = _open(folder / f"{name}.npy", "r")
        rows = count if name in ("rgb", "flow", "valid") else count * t
        tmp = folder / f"{name}.grow.npy"
        dst = _open(tmp, "w", src.dtype, (rows, *src.shape[1:]))
        step = 1024
        for i in range(0, src.shape[0], step):
            j = min(i + step, src.shape[0])
            dst[i:j] = src[i:j]
        dst.flush()
        del src, dst
        os.replace(tmp, folder / f"{name}.npy")
    meta["count"] = count
    _write_json(folder / "meta.json", meta)


def _feat_name(key) -> str:
    return "embed" if key == "embed" else f"feat_{key}"


def _feat_key(name: str):
    return "embed" if name == "embed" else int(name[len("feat_"):])


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)
