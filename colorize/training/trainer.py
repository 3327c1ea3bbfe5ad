"""The shared trainer behind ``colorize train``: one loop for every model family.

- Data: :mod:`colorize.training.data` (photos with synthetic motion + real clips), drawn
  deterministically from ``(seed, step)``, prefetched one batch ahead in a thread.
- Checkpoints: ``OUT/last.pt`` every few minutes (net, optimiser, step, RNG states, config), so a
  resumed run continues exactly where the interrupted one stopped; ``OUT/best.pt`` holds the net
  weights (trainable part only) of the best validation PSNR so far (or, with ``best_at_colour``,
  of the best PSNR gain once the chroma is scaled to that colourfulness, with that scale folded
  into the file's chroma gain).
- Log: ``OUT/log.csv``, one row per logged step (losses, lr, speed) and per evaluation
  (validation PSNR of output and grey input, colourfulness ratio).
"""

from __future__ import annotations

import copy
import csv
import importlib
import math
import os
import queue
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from colorize.color.lab import lab_to_rgb
from colorize.models.backbone import FrozenBackbone, load_pretrained_backbone
from colorize.training.data import DataConfig, build_samplers, clip_store_short


@dataclass(frozen=True)
class TrainConfig:
    model: str
    data: tuple[str, ...]
    out: str
    steps: int = 20000
    batch: int = 6
    size: int = 128
    lr: float = 1e-3
    warmup: int = 200
    seed: int = 0
    log_every: int = 20
    eval_every: int = 250
    eval_batches: int = 12
    ckpt_minutes: float = 5.0
    threads: int = 0  # 0 = all cores
    init: str = ""  # start from these trainable weights (fine-tuning); ignored on resume
    # "bf16": forward passes under CPU autocast in bfloat16 (weights, optimiser and losses stay
    # float32). About 2x faster per step on CPUs with AMX / AVX512-BF16; validation is float32.
    precision: str = "fp32"
    # > 0: keep an exponential moving average of the trainable weights (decay per step, e.g. 0.999)
    # and validate / export that average instead of the raw weights: it smooths the step-to-step
    # noise of batches of 6, so the best-validation pick is less of a lucky step. Resumed exactly.
    ema: float = 0.0
    # Family attributes to override for this run (e.g. {"temporal_weight": 0.5}); unknown names
    # are refused.
    extra: dict = field(default_factory=dict)
    photo_short: int = DataConfig.store_short  # short side of the in-memory photo copies (clips: clip_store_short(size))
    crop_min: float = DataConfig.crop_min  # photo crops cover crop_min..1 of the short side
    # A feature-cache folder (outside the repository): the frozen backbone's features of
    # ``cache_samples`` augmented samples are computed once there (resumable) and training steps
    # draw from it, running only the small networks. "" = no cache (features every step).
    cache: str = ""
    cache_samples: int = 20000
    cache_dtype: str = "float16"
    # > 0: pick best.pt by the validation PSNR at this colourfulness ratio instead of the plain
    # PSNR. Each evaluation scales the predicted ab by the smallest gain (1, 1.05, ... 2) whose
    # colourfulness reaches the target and scores that: regression drifts between grey and colour
    # as it trains, and the plain PSNR favours the greyer checkpoints.
    best_at_colour: float = 0.0
    # Fine-tuning: keep every BatchNorm layer of the trained net in eval mode, normalising with
    # the running statistics of the --init file and never updating them. With batch statistics,
    # re-estimated running statistics alone (40 steps at lr 1e-9) cost the shipped selfreg 0.28 dB
    # of validation at colour 0.8: the early fall of every fine-tune before this option.
    freeze_bn: bool = False
    # A folder of held-out colour clips (or one clip): each evaluation also colourizes them
    # as the product does (``colorize eval``: whole frames at the model's render size, its own
    # refine pass or propagation, the gamut step) and best.pt follows that figure instead of the
    # crops' (``val_frames`` frames a clip). The crops' validation scores 128-px crops and ranked
    # nets differently from whole frames at render 256 (twelfth session).
    val_clips: str = ""
    val_frames: int = 20


PRECISIONS = ("fp32", "bf16")


def cpu_bf16_is_native() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX). Without it oneDNN
    emulates bfloat16, and a bf16 step is far slower than an fp32 one."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def load_family(name: str):
    try:
        mod = importlib.import_module(f"colorize.models.{name}")
    except ModuleNotFoundError as exc:
        raise ValueError(f"no trainable model family {name!r}") from exc
    family = getattr(mod, "FAMILY", None)
    if family is None:
        raise ValueError(f"model family {name!r} has no FAMILY to train")
    return family


def with_overrides(family, overrides: dict):
    """A copy of ``family`` with some attributes replaced (the module's FAMILY stays untouched)."""
    if not overrides:
        return family
    family = copy.copy(family)
    for key, value in overrides.items():
        if key.startswith("_") or not hasattr(family, key) or callable(getattr(family, key)):
            raise ValueError(f"model family {family.name!r} has no option {key!r}")
        current = getattr(family, key)
        if key in ("name", "window") or isinstance(current, bool) or not isinstance(current, (int, float)):
            raise ValueError(f"{key!r} of model family {family.name!r} is not a numeric loss setting")
        try:
            value = type(current)(value)
        except (TypeError, ValueError):
            raise ValueError(f"{key}={value!r}: expected {type(current).__name__}") from None
        setattr(family, key, value)
    return family


def lr_at(cfg: TrainConfig, step: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = torch.mean((a.float() - b.float()) ** 2).item()
    return 99.0 if mse <= 1e-12 else 10 * math.log10(1.0 / mse)


AT_COLOUR_GAINS = tuple(1.0 + 0.05 * i for i in range(21))


def psnr_at_colour(frames: list, target: float, show=None) -> dict:
    """PSNR (mean over ``frames``) after scaling the predicted ab by the smallest gain of
    ``AT_COLOUR_GAINS`` whose colourfulness ratio (as :meth:`Trainer.evaluate` measures it) is at
    least ``target``, or by the largest gain if none is. frames: [(L (N, 1, H, W), predicted ab
    (N, 2, H, W), true RGB (N, 3, H, W))]; ``show(l, ab)``: what the pipeline makes of scaled ab
    before it is shown (the gamut step), applied after the gain as the pipeline does.
    Returns {"psnr", "gain", "colour_ratio"}."""
    show = show or (lambda l, ab: ab)
    c_gt = sum(colourfulness(gt) for _, _, gt in frames)
    for gain in AT_COLOUR_GAINS:
        rgbs = [lab_to_rgb(torch.cat((l, show(l, ab * gain)), 1)) for l, ab, _ in frames]
        ratio = sum(colourfulness(x) for x in rgbs) / max(1e-6, c_gt)
        if ratio >= target or gain == AT_COLOUR_GAINS[-1]:
            value = sum(psnr(x, gt) for x, (_, _, gt) in zip(rgbs, frames)) / len(frames)
            return {"psnr": value, "gain": gain, "colour_ratio": ratio}
    raise AssertionError("unreachable")


def fold_chroma_gain(state: dict, gain: float) -> tuple[dict, float | None]:
    """``state`` with its chroma-gain buffer (``chroma_gain`` of ``lstm``, ``f.chroma_gain`` of
    ``selfreg``: shown colours = buffer x prediction) multiplied by ``gain``, and the buffer's new
    value. Validation applies the buffer (as the stream does), so a net trained from a file with a
    gain is validated with it, and a validation gain goes on top of it. A state without the buffer
    (``exemplar``) comes back unchanged, with None."""
    keys = [k for k in state if k == "chroma_gain" or k.endswith(".chroma_gain")]
    if not keys:
        return state, None
    out = dict(state)
    for k in keys:
        out[k] = state[k] * gain
    return out, round(float(out[keys[0]]), 6)


def colourfulness(rgb: torch.Tensor) -> float:
    """Hasler & Suesstrunk on (N, 3, H, W) in [0, 1], scaled to 0..255 units."""
    r, g, b = (rgb * 255).unbind(1)
    rg, yb = r - g, 0.5 * (r + g) - b
    return (torch.sqrt(rg.std() ** 2 + yb.std() ** 2) + 0.3 * torch.sqrt(rg.mean() ** 2 + yb.mean() ** 2)).item()


class Trainer:
    def __init__(self, cfg: TrainConfig, train_sampler=None, val_sampler=None) -> None:
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        if cfg.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {cfg.precision!r}")
        if cfg.precision == "bf16" and not cpu_bf16_is_native():
            warnings.warn(
                f"--precision bf16 on a CPU without native bfloat16 ({torch.backends.cpu.get_cpu_capability()}): "
                "it is emulated and runs many times slower than fp32 (12x measured on an AVX2 machine); "
                "use --precision fp32 here", RuntimeWarning, stacklevel=2)
        torch.manual_seed(cfg.seed)
        if not 0.0 <= cfg.ema < 1.0:
            raise ValueError(f"ema must be in [0, 1), got {cfg.ema}")
        self.family = with_overrides(load_family(cfg.model), cfg.extra)
        init = torch.load(cfg.init, map_location="cpu", weights_only=True) if cfg.init else None
        if init is not None and hasattr(self.family, "fit_to_file"):  # e.g. selfreg's widths from the file
            self.family = self.family.fit_to_file(init, set(cfg.extra))
        self.net = self.family.build_net()
        if init is not None:
            self._load_init(cfg.init, init)
            if hasattr(self.family, "configure_net"):  # the family's settings win over the file's
                self.family.configure_net(self.net)
        self.ema_net = copy.deepcopy(self.net).eval().requires_grad_(False) if cfg.ema > 0 else None
        self.backbone = FrozenBackbone(load_pretrained_backbone(getattr(self.family, "backbone_variant", "lite0")))
        if hasattr(self.family, "param_groups"):  # e.g. a slower learning rate for a tuned backbone
            self.opt = torch.optim.Adam(self.family.param_groups(self.net, cfg.lr), lr=cfg.lr)
        else:
            self.opt = torch.optim.Adam([p for p in self.net.parameters() if p.requires_grad], lr=cfg.lr)
        self.step = 0
        self.wall = 0.0
        self.best = -math.inf
        if train_sampler is None:
            dcfg = DataConfig(size=cfg.size, window=self.family.window, photo_short=cfg.photo_short,
                              crop_min=cfg.crop_min, store_short=clip_store_short(cfg.size))
            train_sampler, val_sampler = build_samplers([Path(d) for d in cfg.data], dcfg, cfg.seed)
        self.train_sampler, self.val_sampler = train_sampler, val_sampler
        self.val_clip_paths = []
        if cfg.val_clips:  # a wrong folder fails now, not at the first evaluation
            from colorize.evaluation.runner import find_clips

            if cfg.val_frames < 1:
                raise ValueError(f"val_frames must be >= 1, got {cfg.val_frames}")
            self.val_clip_paths = find_clips([cfg.val_clips])
        if cfg.cache:
            self.train_sampler = self._cached_sampler(self.train_sampler)
        if getattr(self.family, "rebalance", 0) > 0 and getattr(self.family, "ab_weights", None) is None:
            self.family.ab_weights = self._rebalance_table()

    def _load_init(self, path: str, state: dict) -> None:
        """Start from ``path``'s weights, strictly, except for parameters the family declares as
        zero-initialised growth (``growth_prefixes``), which an older file may lack, and for the
        layers that read the backbone's channels (``backbone_prefixes``) when the file was trained
        on another backbone: those start as built and everything else is carried over. ``state``
        is the file's content, loaded once in ``__init__``; ``path`` names it in errors."""
        own = self.net.state_dict()
        swapped = tuple(getattr(self.family, "backbone_prefixes", ()))
        # One such layer of another shape means another backbone: then all of them start as built
        # (a Lite0 and a Lite2 stride-2 map have the same 16 channels but not the same features).
        other = any(k.startswith(swapped) and k in own and own[k].shape != v.shape for k, v in state.items())
        reread = [k for k in state if k.startswith(swapped)] if other else []
        state = {k: v for k, v in state.items() if k not in reread}
        self.init_fresh = reread  # what the file could not give (for the tests)
        shapes = [f"{k} {tuple(v.shape)} (net: {tuple(own[k].shape)})" for k, v in state.items()
                  if k in own and own[k].shape != v.shape]
        if shapes:  # e.g. a file of other widths (selfreg's width_s4 / width_s8 must match it)
            raise ValueError(f"--init {path} does not fit model {self.family.name!r} as configured: "
                             f"other shapes for {', '.join(shapes[:3])}")
        missing, unexpected = self.net.load_state_dict(state, strict=False)
        if other:
            missing = [k for k in missing if not k.startswith(swapped)]
        bad = [k for k in missing if not k.startswith(tuple(getattr(self.family, "growth_prefixes", ())))]
        if bad or unexpected:
            raise ValueError(f"--init {path} does not fit model {self.family.name!r}: "
                             f"missing {bad[:5]}, unexpected {list(unexpected)[:5]}")

    def _cached_sampler(self, sampler):
        from colorize.training.feature_cache import CachedSampler, FeatureCache, cache_spec

        spec = cache_spec(self.family)
        if spec is None:
            raise ValueError(f"model family {self.family.name!r} cannot train from a feature cache")
        settings = {"data": list(self.cfg.data), "size": self.cfg.size, "window": self.family.window,
                    "seed": self.cfg.seed, "photo_short": self.cfg.photo_short, "crop_min": self.cfg.crop_min,
                    "family": self.family.name}
        variant = getattr(self.family, "backbone_variant", "lite0")
        if variant != "lite0":  # (Lite0 caches predate the key)
            settings["backbone"] = variant
        cache = FeatureCache.build(self.cfg.cache, sampler, self.backbone, spec, self.cfg.cache_samples, settings,
                                   feat_dtype=self.cfg.cache_dtype)
        return CachedSampler(cache, self.cfg.seed)

    def _rebalance_table(self, samples: int = 400) -> torch.Tensor:
        """Zhang et al.'s rebalancing weights from the chroma of ``samples`` training samples."""
        from colorize.training.rebalance import ab_counts, rebalance_weights

        counts = None
        for i in range(0, samples, 20):
            lab = self.train_sampler.batch(10_000_000 + i, 20).lab  # draws of their own, not the steps'
            c = ab_counts(lab[:, :, 1:].flatten(0, 1))
            counts = c if counts is None else counts + c
        return rebalance_weights(counts, self.family.rebalance)

    # ----------------------------------------------------------------- state
    def state(self) -> dict:
        return {
            "net": self.net.state_dict(),
            "opt": self.opt.state_dict(),
            "step": self.step,
            "wall": self.wall,
            "best": self.best,
            "torch_rng": torch.get_rng_state(),
            "config": asdict(self.cfg),
            **({"ema": self.ema_net.state_dict()} if self.ema_net is not None else {}),
        }

    def save(self) -> None:
        tmp = self.out / "last.pt.tmp"
        torch.save(self.state(), tmp)
        os.replace(tmp, self.out / "last.pt")

    def resume(self) -> bool:
        path = self.out / "last.pt"
        if not path.exists():
            return False
        st = torch.load(path, map_location="cpu", weights_only=True)
        self.net.load_state_dict(st["net"], strict=True)
        self.opt.load_state_dict(st["opt"])
        if self.ema_net is not None:
            # A run that switches EMA on at resume starts the average from the current weights.
            self.ema_net.load_state_dict(st.get("ema", st["net"]), strict=True)
        self.step, self.wall, self.best = st["step"], st["wall"], st["best"]
        torch.set_rng_state(st["torch_rng"])
        return True

    def _log(self, row: dict) -> None:
        path = self.out / "log.csv"
        fields = ["kind", "step", "wall_s", "lr", "loss", "terms", "val_psnr", "val_psnr_grey", "val_gain", "val_colour_ratio", "steps_per_s"]
        if self.cfg.best_at_colour > 0:
            fields += ["val_gain_at_colour", "val_chroma_gain"]
        if self.cfg.val_clips:
            fields += ["clips_gain", "clips_colour_ratio", "clips_flicker_ratio"]
            if self.cfg.best_at_colour > 0:
                fields += ["clips_gain_at_colour", "clips_chroma_gain"]
        new = not path.exists()
        with open(path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            if new:
                w.writeheader()
            w.writerow({k: row.get(k, "") for k in fields})

    # ------------------------------------------------------------------ eval
    @property
    def eval_net(self) -> torch.nn.Module:
        """The weights that are validated and exported: the moving average when EMA is on."""
        return self.ema_net if self.ema_net is not None else self.net

    @torch.no_grad()
    def update_ema(self) -> None:
        if self.ema_net is None:
            return
        d = self.cfg.ema
        for e, p in zip(self.ema_net.parameters(), self.net.parameters()):
            e.mul_(d).add_(p.detach(), alpha=1.0 - d)
        for (name, e), b in zip(self.ema_net.named_buffers(), self.net.buffers()):
            if name.endswith(("running_mean", "running_var")):
                # BatchNorm's statistics are averaged with the weights they belong to: taken from
                # the live net, they would normalise the averaged weights with another net's
                # statistics. Other buffers (counters, a file's calibration) are copied.
                e.mul_(d).add_(b.detach(), alpha=1.0 - d)
            else:
                e.copy_(b)

    def train_mode(self) -> None:
        """The trained net in training mode; its BatchNorm layers stay in eval mode with
        ``freeze_bn`` (fixed running statistics, as at inference)."""
        self.net.train()
        if self.cfg.freeze_bn:
            for m in self.net.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.eval()

    @torch.no_grad()
    def evaluate(self) -> dict:
        net = self.eval_net
        net.eval()
        p_out, p_grey, c_out, c_gt, frames = [], [], [], [], []
        for i in range(self.cfg.eval_batches):
            batch = self.val_sampler.batch(i, self.cfg.batch)
            ab = self.family.predict(net, batch.lab, self.backbone)
            lab = batch.lab.flatten(0, 1)
            ab, gt = ab.flatten(0, 1).float(), batch.rgb.flatten(0, 1)
            if self.cfg.best_at_colour > 0:
                frames.append((lab[:, :1], ab, gt))
            pred = lab_to_rgb(torch.cat((lab[:, :1], self.shown(lab[:, :1], ab)), 1))
            grey = lab_to_rgb(torch.cat((lab[:, :1], torch.zeros_like(lab[:, 1:])), 1))
            p_out.append(psnr(pred, gt))
            p_grey.append(psnr(grey, gt))
            c_out.append(colourfulness(pred))
            c_gt.append(colourfulness(gt))
        self.train_mode()
        n = len(p_out)
        res = {
            "val_psnr": sum(p_out) / n,
            "val_psnr_grey": sum(p_grey) / n,
            "val_colour_ratio": sum(c_out) / max(1e-6, sum(c_gt)),
        }
        res["val_gain"] = res["val_psnr"] - res["val_psnr_grey"]
        if frames:
            at = psnr_at_colour(frames, self.cfg.best_at_colour, self.shown)
            res["val_gain_at_colour"] = at["psnr"] - res["val_psnr_grey"]
            res["val_chroma_gain"] = at["gain"]
        return res

    def shown(self, l: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        """ab as the pipeline shows it: after the gamut step (colorize.color.gamut.limit_chroma at
        the frame's L) where the family trains with it (``gamut``, on in every family's default).
        Validation measures that, not the raw prediction: a net trained on the limited colours is
        free to predict anything the limit removes (near black and white), and the raw figure
        then falls while what the user sees does not."""
        if not getattr(self.family, "gamut", 0):
            return ab
        from colorize.color.gamut import limit_chroma

        return limit_chroma(l, ab)

    def export_state(self) -> dict:
        """The weights that best.pt would hold now: the validated net without the parts that only
        serve training (a family's ``training_only_prefixes``, e.g. selfreg's critic)."""
        drop = tuple(getattr(self.family, "training_only_prefixes", ()))
        return {k: v.detach().clone() for k, v in self.eval_net.state_dict().items()
                if not (drop and k.startswith(drop))}

    def evaluate_clips(self) -> dict:
        """``colorize eval`` of the validated weights on ``val_clips`` (``val_frames`` frames a
        clip), as a user's file would run: {"clips_gain", "clips_colour_ratio",
        "clips_flicker_ratio"}, and with ``best_at_colour`` the PSNR gain at that colourfulness
        ratio ("clips_gain_at_colour") and the chroma gain that reaches it ("clips_chroma_gain").

        The colour target costs a second pass: when gain 1 falls short of the target, the clips
        run again at gain target / colourfulness (at most 2), and the figure at the target is
        read off the line through the two passes (colourfulness grows almost linearly with the
        gain; the gamut step bends it at high gains, so the second gain is not extrapolated
        beyond). A family without a chroma gain (``exemplar``) is scored at gain 1 only."""
        from colorize.evaluation.runner import evaluate
        from colorize.models import create_model

        clips = self.val_clip_paths
        state = self.export_state()
        tmp = self.out / "val_clips.pt.tmp"

        def run(gain: float) -> tuple[float, float, float]:
            torch.save(fold_chroma_gain(state, gain)[0], tmp)
            try:
                model = create_model(self.cfg.model, device="cpu", weights=tmp)
            finally:
                tmp.unlink(missing_ok=True)
            ref = "first-frame" if model.info.needs_reference else None
            m = evaluate(model, clips, max_frames=self.cfg.val_frames, ref_mode=ref).mean()
            return m["psnr_gain"], m["colourfulness_ratio"], m["flicker_ratio"]

        p1, c1, f1 = run(1.0)
        res = {"clips_gain": p1, "clips_colour_ratio": c1, "clips_flicker_ratio": f1}
        target = self.cfg.best_at_colour
        if target > 0:
            if c1 >= target or fold_chroma_gain(state, 1.0)[1] is None:
                res.update(clips_gain_at_colour=p1, clips_chroma_gain=1.0)
            else:
                g2 = min(AT_COLOUR_GAINS[-1], target / max(c1, 1e-3))
                p2, c2, _ = run(g2)
                if c2 > c1 and c2 >= target:
                    t = (target - c1) / (c2 - c1)
                    res.update(clips_gain_at_colour=p1 + t * (p2 - p1), clips_chroma_gain=1.0 + t * (g2 - 1.0))
                else:  # the target is out of reach: the most colourful pass measured
                    res.update(clips_gain_at_colour=p2, clips_chroma_gain=g2)
        return res

    def _criterion(self, metrics: dict) -> float:
        """What best.pt maximises: the validation PSNR, or its gain over grey at the colour
        target (``best_at_colour``); with ``val_clips``, the clips' PSNR gain (at the target)."""
        if self.cfg.val_clips:
            return metrics["clips_gain_at_colour"] if self.cfg.best_at_colour > 0 else metrics["clips_gain"]
        return metrics["val_gain_at_colour"] if self.cfg.best_at_colour > 0 else metrics["val_psnr"]

    def export_best(self, metrics: dict) -> None:
        # Parts that only serve training stay in last.pt for resuming and never reach best.pt,
        # the future weights file.
        state = self.export_state()
        extra = {}
        if self.cfg.best_at_colour > 0:
            # best.pt is chosen for its PSNR at the colour target: it carries the gain that got
            # there, so the file as shipped is the file that was measured.
            key = "clips_chroma_gain" if self.cfg.val_clips else "val_chroma_gain"
            state, folded = fold_chroma_gain(state, metrics[key])
            extra["chroma_gain_in_file"] = folded
        torch.save(state, self.out / "best.pt.tmp")
        os.replace(self.out / "best.pt.tmp", self.out / "best.pt")
        (self.out / "best.json").write_text(
            __import__("json").dumps({"step": self.step, "wall_s": round(self.wall), **metrics, **extra}, indent=2)
        )

    # ------------------------------------------------------------------ loop
    def run(self, stop_after: int | None = None, on_log=None) -> dict:
        cfg = self.cfg
        self.train_mode()
        q: queue.Queue = queue.Queue(maxsize=2)
        start_step = self.step
        end = cfg.steps if stop_after is None else min(cfg.steps, start_step + stop_after)

        def produce():
            for s in range(start_step, end):
                q.put(self.train_sampler.batch(s, cfg.batch))

        threading.Thread(target=produce, daemon=True).start()
        last_ckpt = time.monotonic()
        t_log, s_log = time.monotonic(), self.step
        sums: dict = {}
        while self.step < end:
            t0 = time.monotonic()
            batch = q.get()
            for g in self.opt.param_groups:
                g["lr"] = lr_at(cfg, self.step) * g.get("lr_scale", 1.0)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
                losses = self.family.training_step(self.net, batch, self.backbone, self.step)
            self.opt.zero_grad(set_to_none=True)
            losses["loss"].backward()
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), 5.0)
            self.opt.step()
            self.update_ema()
            self.step += 1
            self.wall += time.monotonic() - t0
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            if self.step % cfg.log_every == 0:
                now = time.monotonic()
                n = self.step - s_log
                row = {
                    "kind": "train", "step": self.step, "wall_s": round(self.wall, 1), "lr": f"{lr_at(cfg, self.step):.2e}",
                    "loss": f"{sums['loss'] / n:.5f}",
                    "terms": " ".join(f"{k}={v / n:.4f}" for k, v in sums.items() if k != "loss"),
                    "steps_per_s": f"{n / (now - t_log):.3f}",
                }
                self._log(row)
                if on_log:
                    on_log(row)
                sums, t_log, s_log = {}, now, self.step
            if self.step % cfg.eval_every == 0 or self.step == end:
                metrics = self.evaluate()
                if cfg.val_clips:
                    metrics.update(self.evaluate_clips())
                row = {"kind": "eval", "step": self.step, "wall_s": round(self.wall, 1), **{k: f"{v:.4f}" for k, v in metrics.items()}}
                self._log(row)
                if on_log:
                    on_log(row)
                if self._criterion(metrics) > self.best:
                    self.best = self._criterion(metrics)
                    self.export_best(metrics)
            if time.monotonic() - last_ckpt > cfg.ckpt_minutes * 60 or self.step == end:
                self.save()
                last_ckpt = time.monotonic()
        return {"step": self.step, "best_val_psnr": self.best}
