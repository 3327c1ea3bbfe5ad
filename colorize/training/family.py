"""What a model family provides to the shared trainer (``colorize train``).

The trainer owns data loading, the frozen backbone, optimisation, checkpoints, exact resume and
the CSV log; a family owns its network and its losses. Training never runs on the inference path:
nothing under ``colorize.training`` is imported by the CLI's colourize command.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from colorize.models.backbone import FrozenBackbone


@dataclass
class TrainBatch:
    """One batch of short clips, all tensors on the training device.

    rgb:   (B, T, 3, H, W) sRGB in [0, 1]; T = the family's ``window``.
    lab:   (B, T, 3, H, W) the same frames in Lab (L 0..100, ab -128..127).
    flow:  (B, T-1, 2, H, W) backward flow: pixel (x, y) of frame t+1 came from
           (x + flow[0], y + flow[1]) in frame t. Exact for synthetic-motion clips made from
           photos, OpenCV DIS for real clips.
    valid: (B, T-1, 1, H, W) 1 where that flow is trustworthy (inside the frame, not occluded).
    other_rgb: (B, 3, H, W) an unrelated photo from the training set (exemplar fall-back training).
    feats: the frozen backbone's features of the B*T frames (flattened in that order) when they
           come from a feature cache (:mod:`colorize.training.feature_cache`), else None and the
           family computes them.
    knn:   bilateral nearest-neighbour pairs of the B*T frames' RGB when they come from a feature
           cache (:func:`colorize.training.losses.knn_pairs` run once at build time):
           ``(idx (B*T, S), nbr (B*T, S, k))`` int64 flat pixel indices, else None.
    """

    rgb: torch.Tensor
    lab: torch.Tensor
    flow: torch.Tensor
    valid: torch.Tensor
    other_rgb: torch.Tensor
    feats: dict | None = None
    knn: tuple[torch.Tensor, torch.Tensor] | None = None


class TrainableFamily(Protocol):
    name: str
    window: int  # frames per training sample

    def build_net(self) -> nn.Module:
        """The trainable network only (the frozen backbone is passed in separately)."""

    def training_step(
        self, net: nn.Module, batch: TrainBatch, backbone: FrozenBackbone, step: int
    ) -> dict[str, torch.Tensor]:
        """Losses for one batch; must contain ``"loss"`` (the scalar that is back-propagated)."""
