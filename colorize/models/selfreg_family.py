"""What ``colorize train --model selfreg`` trains: the losses of :mod:`colorize.models.selfreg`'s
networks (Lei & Chen's ranked diversity, bilateral, temporal and refinement terms, and the options
added since: the gamut step inside the loss, class rebalancing, the class head, the perceptual
distance on crops and the adversarial term).

Training only: the inference path never imports this module (``colorize.models.selfreg`` loads
it on first use of ``FAMILY``).
"""

from __future__ import annotations

import copy

import torch

from colorize.models.backbone import FeatureSpec, FrozenBackbone, semantic_input
from colorize.models.selfreg import AB_SCALE, F_WIDTHS, NUM_DIVERSE, SelfRegNet, widths_of

class SelfRegFamily:
    """What ``colorize train --model selfreg`` trains (see :mod:`colorize.training.family`).

    window = 2: frame pairs (t, t+1) carry everything the losses need — the temporal loss of f and
    g's L1 loss with frame t as the neighbour of frame t+1.
    Per-output distance of the diversity loss: Huber on ab (unit scale, ab / 128); a
    ``perceptual_weight`` > 0 adds the paper's perceptual distance (backbone features at strides
    2..8 of the predicted vs. true RGB, back-propagated through the frozen backbone). The default
    is 0: on 2 CPU cores a step then costs ~2.5x less (batch 6 x 2 frames at 128 px), and the
    bilateral, temporal and refinement terms are unchanged. g is trained on one random head per
    sample and step, on detached outputs of f (f's colours are g's input, not its target).
    """

    name = "selfreg"
    window = 2

    def __init__(
        self,
        num_outputs: int = NUM_DIVERSE,
        betas: tuple[float, ...] | None = None,
        perceptual_weight: float = 0.0,
        bilateral_weight: float = 1.0,
        temporal_weight: float = 1.0,
        refine_weight: float = 1.0,
        knn_samples: int = 1024,
        knn_k: int = 5,
        knn_lambda: float = 1.0,
        gamut: int = 1,
        rebalance: float = 0.0,
        context: int = 0,
        classes: int = 0,
        class_weight: float = 0.05,
        lite2: int = 0,
        adversarial: float = 0.0,
        adv_crop: int = 64,
        perceptual_crop: int = 0,
        select: int = 0,
        select_only: int = 0,
        select_weight: float = 1.0,
        tune_top: int = 0,
        top_lr: float = 0.1,
        semantic_scale: float = 1.0,
        width_s4: int = 0,
        width_s8: int = 0,
    ) -> None:
        self.num_outputs = num_outputs
        # beta_0 = 1: output 0 is always fully supervised, the safe single answer that diverse=1
        # returns; the small betas of the others let them specialise on the samples they win
        # (with beta_0 = 0.25 a 200-step probe gave an output 0 as saturated as the truth but 2.6 dB
        # below the grey input on dev_eval).
        self.betas = betas if betas is not None else (1.0,) + tuple(0.1 * 0.5**i for i in range(num_outputs - 1))
        self.perceptual_weight = perceptual_weight
        # > 0: the perceptual distance reads one random perceptual_crop x perceptual_crop crop per
        # frame and step (the same for every output and the truth), at (crop / size)^2 of the cost.
        self.perceptual_crop = perceptual_crop
        self.bilateral_weight = bilateral_weight
        self.temporal_weight = temporal_weight
        self.refine_weight = refine_weight
        self.knn_samples = knn_samples
        self.knn_k = knn_k
        self.knn_lambda = knn_lambda
        # 1: the diversity distances compare the prediction *as it will be shown*, i.e. after
        # colorize.color.gamut.limit_chroma at the frame's L, so f spends no capacity on colours
        # that sRGB cannot show there (near black and white).
        self.gamut = gamut
        # > 0: Zhang et al.'s class rebalancing (lam) of the per-pixel distance
        # (colorize.training.rebalance); the trainer sets ``ab_weights`` from the training data.
        self.rebalance = rebalance
        self.ab_weights: torch.Tensor | None = None
        # 1: f gains the SemanticContext branch. A net without it can be the --init: the
        # branch's keys are then missing from the file and start as built (its output at zero).
        self.context = context
        # 1: f gains the ABClassHead (output 0 becomes its annealed mean), trained with
        # ``class_weight`` x the cross-entropy to Zhang's soft-encoded targets at stride 4
        # (rebalanced when ``rebalance`` > 0) and with the temporal loss on the ab it shows.
        self.classes = classes
        self.class_weight = class_weight
        # 1: f reads EfficientNet-Lite2's features instead of Lite0's. A Lite0 file can be the
        # --init: its backbone-reading layers (``backbone_prefixes``) then start as built.
        self.lite2 = lite2
        # > 0: weight of an adversarial term on the output that is shown (output 0, after the
        # gamut step): a PatchCritic trained alongside (hinge loss) judges one adv_crop x adv_crop
        # crop per frame and step, real (L, ab) against colourized (L, ab).
        self.adversarial = adversarial
        self.adv_crop = adv_crop
        # 1: f gains the ModeSelector (output 0 becomes its mixture of the d outputs), trained with
        # select_weight x the cross-entropy towards the output closest to the truth at each
        # stride-4 cell, on detached features (the selector never changes what f predicts).
        # select_only = 1 trains the selector alone: the rest of the net is frozen, BatchNorm
        # statistics included, and no other loss is computed (an --init file's outputs are kept).
        self.select = select
        self.select_only = select_only
        self.select_weight = select_weight
        # 1: the net carries a trainable copy of the backbone past stride 8 (TunedTop), started
        # from the ImageNet weights (also when --init is a file without it) and trained at
        # top_lr x the learning rate; a feature cache's stride-8 maps feed it.
        self.tune_top = tune_top
        self.top_lr = top_lr
        # The frozen backbone reads the crop's L at this multiple of its size (semantic_input) in
        # training, validation and the feature cache, and the net (so its weights file) carries it:
        # f learns from the stronger features it is later shown at inference. Inference may still
        # be calibrated to another scale afterwards (benchmarks/chroma_gain.py --semantic-scales).
        self.semantic_scale = semantic_scale
        # f's channels at stride 4 and at stride 8 (the bottleneck where the backbone's semantics
        # join), 0 = the shipped 32 and 64. Wider deep levels add capacity where the net decides
        # colours, at little cost per frame: their grids are 1/16 and 1/64 of the frame's.
        self.width_s4 = width_s4
        self.width_s8 = width_s8

    @property
    def f_widths(self) -> tuple[int, ...]:
        c0, c1, c2, c3 = F_WIDTHS
        widths = (c0, c1, self.width_s4 or c2, self.width_s8 or c3)
        if min(widths) < 1:
            raise ValueError(f"f's widths must be positive, got {widths}")
        return widths

    @property
    def backbone_variant(self) -> str:
        return "lite2" if self.lite2 else "lite0"

    # Parameters an --init file may lack: the context branch (zero-started, so the net starts as
    # it was) and the class head (new; the regression heads keep working meanwhile).
    # The critic of the adversarial term starts fresh on any file; so does the chroma calibration
    # (gain 1), which older files lack.
    growth_prefixes = ("f.context.", "f.cls.", "f.select.", "top.", "critic.", "f.chroma_gain", "semantic_scale", "render_size")
    # The layers that read the backbone's channels: an --init file trained on the other backbone
    # (Lite0 -> Lite2) gives everything else (f's L path and decoder, g) and these start as built.
    backbone_prefixes = ("f.hyper.", "f.context.", "top.")
    # Trained but never exported: best.pt (and so a weights file) leaves the critic out.
    training_only_prefixes = ("critic.",)

    @property
    def selects(self) -> bool:
        """Whether f has the mode selector (``select`` or ``select_only``)."""
        return bool(self.select or self.select_only)

    def build_net(self) -> SelfRegNet:
        if self.selects and self.classes:
            raise ValueError("select and classes cannot be combined: both decide f's output 0")
        net = SelfRegNet(self.num_outputs, context=bool(self.context), classes=bool(self.classes),
                         backbone=self.backbone_variant, critic=self.adversarial > 0, select=self.selects,
                         tune_top=bool(self.tune_top), widths=self.f_widths)
        self.configure_net(net)
        if self.select_only:
            for name, p in net.named_parameters():
                p.requires_grad_(name.startswith("f.select."))
        return net

    def fit_to_file(self, state: dict, explicit: set) -> "SelfRegFamily":
        """The family to fine-tune ``state`` (an --init file) with: f's widths that were not set
        explicitly (``--set width_s4 / width_s8``, the names in ``explicit``) are read off the
        file's shapes, so a wider file (the shipped one may be) fine-tunes with no options, as it
        runs with none. Returns a copy; the module's FAMILY stays as it is."""
        widths = widths_of(state)
        fitted = copy.copy(self)
        for i, key in ((2, "width_s4"), (3, "width_s8")):
            if key not in explicit:
                setattr(fitted, key, 0 if widths[i] == F_WIDTHS[i] else widths[i])
        return fitted

    def configure_net(self, net: SelfRegNet) -> None:
        """Settings the family writes into the net, also over an --init file's: the semantic scale."""
        if self.semantic_scale <= 0:
            raise ValueError(f"semantic_scale must be > 0, got {self.semantic_scale}")
        net.semantic_scale.fill_(self.semantic_scale)

    def param_groups(self, net: SelfRegNet, lr: float) -> list[dict]:
        """The optimiser's groups: the tuned deep end of the backbone at ``top_lr`` x lr (its
        ``lr_scale``), everything else trainable at lr."""
        top = [p for n, p in net.named_parameters() if p.requires_grad and n.startswith("top.")]
        rest = [p for n, p in net.named_parameters() if p.requires_grad and not n.startswith("top.")]
        groups = [{"params": rest, "lr": lr, "lr_scale": 1.0}] if rest else []
        if top:
            groups.append({"params": top, "lr": lr * self.top_lr, "lr_scale": self.top_lr})
        return groups

    # What a feature cache stores for this family (colorize.training.feature_cache): the
    # hypercolumn reads strides 2..8 on the stride-8 grid, 16 and 32 on their own.
    feature_spec = FeatureSpec(grids=((2, 8), (4, 8), (8, 8), (16, 16), (32, 32)), embed=True)

    @property
    def knn_spec(self) -> tuple[int, int, float]:
        """The bilateral loss's neighbour search (k, samples, lam), which a feature cache runs once
        per sample (a quarter of a cached step's time when it ran every step)."""
        return (self.knn_k, self.knn_samples, self.knn_lambda)

    def _distances(self, pred: torch.Tensor, ab_gt: torch.Tensor, l: torch.Tensor) -> torch.Tensor:
        """Per-sample, per-output distance (BT, d) of pred (BT, d, 2, H, W) to ab_gt (BT, 2, H, W),
        unit scale, gamut-limited and rebalanced as configured."""
        from colorize.color.gamut import limit_chroma
        from colorize.training.losses import huber
        from colorize.training.rebalance import pixel_weights

        n, d = pred.shape[:2]
        flat = pred.flatten(0, 1)
        if self.gamut:
            flat = limit_chroma(l.repeat_interleave(d, 0), flat * AB_SCALE) / AB_SCALE
        weight = None
        if self.rebalance > 0:
            if self.ab_weights is None:
                raise ValueError("rebalance is on but no ab_weights were set (the trainer sets them)")
            weight = pixel_weights(ab_gt * AB_SCALE, self.ab_weights).repeat_interleave(d, 0)
        return huber(flat, ab_gt.repeat_interleave(d, 0), weight=weight).view(n, d)

    def training_step(self, net: SelfRegNet, batch, backbone: FrozenBackbone, step: int) -> dict[str, torch.Tensor]:
        from colorize.models.backbone import normalize_rgb255
        from colorize.training import losses

        lab, rgb = batch.lab, batch.rgb
        b, t, _, h, w = lab.shape
        if t < 2:
            raise ValueError(f"selfreg trains on frame pairs, got windows of {t}")
        l = lab[:, :, :1].flatten(0, 1)
        ab_gt = lab[:, :, 1:].flatten(0, 1) / AB_SCALE
        rgb_gt = rgb.flatten(0, 1)
        if batch.feats is not None:  # from a feature cache, already on f's grids
            feats = batch.feats
        else:
            with torch.no_grad():
                strides, embed = net.backbone_strides
                feats = backbone(semantic_input(l, float(net.semantic_scale)), strides=strides, embed=embed)
        feats = net.semantic(feats)
        if self.select_only:
            return self._select_only_step(net, l, ab_gt, feats)
        if self.selects:
            e0, e1, x4, x8 = net.f.trunk(l, feats)
            reg, logits = net.f.decode(e0, e1, x4, net.f.num_outputs), None
            sel_in = net.f.stride4_features(x4, x8).detach()
        else:
            reg, logits = net.f.parts(l, feats, net.f.num_outputs)
        pred = reg / AB_SCALE  # (BT, d, 2, H, W), unit scale
        d = pred.shape[1]

        # Ranked diversity loss (eq. 7) over per-output distances.
        dists = self._distances(pred, ab_gt, l)
        gen = torch.Generator().manual_seed(int(step))
        if self.perceptual_weight > 0:
            def feature_fn(x_rgb):
                fs = backbone.net.features(normalize_rgb255(x_rgb * 255.0), strides=(2, 4, 8), embed=False)
                return [fs[s] for s in (2, 4, 8)]

            from colorize.color.lab import lab_to_rgb

            l_p, ab_p, rgb_p = l, pred.flatten(0, 1), rgb_gt
            if 0 < self.perceptual_crop < min(h, w):
                crop = _random_crop(self.perceptual_crop, h, w, gen)
                l_p, ab_p, rgb_p = crop(l_p), crop(ab_p), crop(rgb_p)
            l_rep = l_p.repeat_interleave(d, 0)
            rgb_pred = lab_to_rgb(torch.cat((l_rep, ab_p * AB_SCALE), 1))
            perc = losses.perceptual_distance(feature_fn, rgb_pred, rgb_p.repeat_interleave(d, 0))
            dists = dists + self.perceptual_weight * perc.view(-1, d)
        diversity = losses.ranked_diversity_loss(dists, self.betas)

        # Bilateral self-regularization (eq. 2), on every output at once.
        bilateral = losses.bilateral_loss(
            pred.flatten(1, 2), rgb_gt, k=self.knn_k, num_samples=self.knn_samples, lam=self.knn_lambda, generator=gen,
            pairs=batch.knn,
        )

        # Temporal regularization of f (eq. 3) along the batch's flow, and g on the same pairs (eq. 5).
        seq = pred.view(b, t, d * 2, h, w)
        l_seq = l.view(b, t, 1, h, w)
        # g sees one output pair per sample, a random head each step: over training it is trained
        # on every head (the paper trains g "on each pair of output") at 1/d of the cost.
        head = torch.randint(d, (b,), generator=gen).to(lab.device)
        pick = lambda x: x.view(b, d, 2, h, w)[torch.arange(b, device=lab.device), head]  # noqa: E731
        temporal, refine = 0.0, 0.0
        for i in range(t - 1):
            flow, valid = batch.flow[:, i], batch.valid[:, i]
            temporal = temporal + losses.temporal_loss(seq[:, i + 1], seq[:, i], flow, valid)
            ab_s = pick(seq[:, i + 1].detach()) * AB_SCALE
            ab_t = pick(seq[:, i].detach()) * AB_SCALE
            refined = net.refine(ab_s, ab_t, l_seq[:, i + 1], l_seq[:, i], flow, valid)
            refine = refine + losses.masked_l1(refined / AB_SCALE, lab[:, i + 1, 1:] / AB_SCALE)
        temporal = temporal / (t - 1)
        refine = refine / (t - 1)

        loss = (
            diversity
            + self.bilateral_weight * bilateral
            + self.temporal_weight * temporal
            + self.refine_weight * refine
        )
        extra = {}
        if logits is not None:
            classes, temporal_cls = self._class_losses(net, logits, l, ab_gt * AB_SCALE, batch, b, t)
            loss = loss + self.class_weight * classes + self.temporal_weight * temporal_cls
            extra = {"classes": classes.detach(), "temporal_cls": temporal_cls.detach()}
        if self.selects:
            sel = net.f.select(sel_in)
            ce, acc = self._select_loss(sel, pred.detach(), ab_gt, l)
            loss = loss + self.select_weight * ce
            extra.update(select=ce.detach(), select_acc=acc)
        if self.adversarial > 0:
            if self.selects:
                shown = net.f.select.mix(sel, pred * AB_SCALE)
            else:
                shown = net.f.class_ab(logits, l) if logits is not None else pred[:, 0] * AB_SCALE
            critic, adv = self._adversarial_losses(net, l, shown, ab_gt * AB_SCALE, gen)
            loss = loss + critic + self.adversarial * adv
            extra.update(critic=critic.detach(), adversarial=adv.detach())
        with torch.no_grad():
            ab_l1 = (pred[:, 0] - ab_gt).abs().mean() * AB_SCALE  # output 0, in ab units, for the log
        return {
            "loss": loss,
            "diversity": diversity.detach(),
            "bilateral": bilateral.detach(),
            "temporal": temporal.detach(),
            "refine": refine.detach(),
            "ab_l1": ab_l1,
            **extra,
        }

    def _select_loss(self, logits, pred, ab_gt, l):
        """(cross-entropy of the selector's stride-4 logits towards the output closest to the truth
        in each cell, share of cells it gets right). pred (BT, d, 2, H, W), ab_gt (BT, 2, H, W), unit
        scale; closeness is the mean |ab| error of the output as shown (after the gamut step)."""
        from torch.nn import functional as F

        from colorize.color.gamut import limit_chroma

        n, d = pred.shape[:2]
        with torch.no_grad():
            shown = limit_chroma(l.repeat_interleave(d, 0), pred.flatten(0, 1) * AB_SCALE).view_as(pred) / AB_SCALE
            err = (shown - ab_gt[:, None]).abs().sum(2)  # (BT, d, H, W)
            err = F.adaptive_avg_pool2d(err, logits.shape[-2:])
            target = err.argmin(1)
        ce = F.cross_entropy(logits.float(), target)
        acc = (logits.argmax(1) == target).float().mean()
        return ce, acc

    def _select_only_step(self, net, l, ab_gt, feats):
        """Train the mode selector alone on a frozen f (eval mode: BatchNorm statistics stay)."""
        was = net.f.training
        net.f.eval()
        try:
            with torch.no_grad():
                e0, e1, x4, x8 = net.f.trunk(l, feats)
                pred = net.f.decode(e0, e1, x4, net.f.num_outputs) / AB_SCALE
                sel_in = net.f.stride4_features(x4, x8)
        finally:
            net.f.train(was)
        sel = net.f.select(sel_in)
        ce, acc = self._select_loss(sel, pred, ab_gt, l)
        with torch.no_grad():
            shown = net.f.select.mix(sel, pred)
            ab_l1 = (shown - ab_gt).abs().mean() * AB_SCALE
            ab_l1_0 = (pred[:, 0] - ab_gt).abs().mean() * AB_SCALE
        return {"loss": ce, "select": ce.detach(), "select_acc": acc, "ab_l1": ab_l1, "ab_l1_out0": ab_l1_0}

    def _adversarial_losses(self, net, l, shown, ab_gt, gen):
        """(critic's hinge loss, f's adversarial loss) on one random crop of every frame, both
        after the gamut step (:func:`colorize.training.critic.hinge_losses`)."""
        if net.critic is None:
            raise ValueError("adversarial > 0 needs a net built with the critic")
        from colorize.color.gamut import limit_chroma
        from colorize.training.critic import hinge_losses

        crop = _random_crop(self.adv_crop, *l.shape[-2:], gen)
        l_c = crop(l)
        fake = limit_chroma(l_c, crop(shown))  # as it will be shown
        real = limit_chroma(l_c, crop(ab_gt))  # the same step, so the limit itself tells nothing
        return hinge_losses(net.critic, l_c, real, fake)

    def _class_losses(self, net, logits, l, ab_gt, batch, b, t):
        """Cross-entropy of the class head to the soft-encoded truth at its stride-4 grid, and the
        temporal loss of the ab it shows (annealed mean at the net's temperature) along the flow."""
        from colorize.training import losses

        if self.rebalance > 0 and self.ab_weights is None:
            raise ValueError("rebalance is on but no ab_weights were set (the trainer sets them)")
        ce = losses.class_cross_entropy(logits, ab_gt, net.f.cls.centres, self.ab_weights if self.rebalance > 0 else None)
        shown = (net.f.class_ab(logits, l) / AB_SCALE).view(b, t, 2, *l.shape[-2:])
        temporal = 0.0
        for i in range(t - 1):
            temporal = temporal + losses.temporal_loss(shown[:, i + 1], shown[:, i], batch.flow[:, i], batch.valid[:, i])
        return ce, temporal / (t - 1)

    @torch.no_grad()
    def predict(self, net: SelfRegNet, lab: torch.Tensor, backbone: FrozenBackbone) -> torch.Tensor:
        """Validation form: ab (B, T, 2, H, W) of output 0 of f for Lab windows (B, T, 3, H, W).

        No refinement: validation batches carry no flow, and f is what the losses mostly train.
        """
        l = lab[:, :, :1].flatten(0, 1)
        strides, embed = net.backbone_strides
        feats = net.semantic(backbone(semantic_input(l, float(net.semantic_scale)), strides=strides, embed=embed))
        return net.f(l, feats, num=1)[:, 0].view(*lab.shape[:2], 2, *lab.shape[-2:])


def _random_crop(size: int, h: int, w: int, gen: torch.Generator):
    """A function cutting one size x size window (clamped to the frame), placed by ``gen``, from
    tensors (..., h, w): the same window for every tensor it is given."""
    c = min(size, h, w)
    y = int(torch.randint(h - c + 1, (1,), generator=gen))
    x = int(torch.randint(w - c + 1, (1,), generator=gen))
    return lambda z: z[..., y:y + c, x:x + c]


FAMILY = SelfRegFamily()
