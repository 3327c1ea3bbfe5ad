"""The critic of ``selfreg``'s adversarial term (``colorize train --set adversarial=w``), and its
hinge losses. Training only: no weights file keeps a critic."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class PatchCritic(nn.Module):
    """A conditional patch critic for adversarial training (pix2pix-style): (L, ab) in, a map of
    real-or-colourized scores out, one per ~22-pixel patch (three stride-2 4x4 convolutions).

    It only ever trains: it judges whether the colours of a crop are plausible *for its L*, which
    pushes a colourization net away from the grey-brown mean that plain regression settles on.
    Spectral normalisation keeps its scores Lipschitz, so the hinge game stays stable on batches
    of a few crops. Inputs: L (N, 1, H, W) in [0, 100], ab (N, 2, H, W) in about [-128, 128].
    Being 1-Lipschitz, its scores can only differ as much as its inputs do, and the hinge loss asks
    for a margin of 1: ab is read at /32 (the chroma of real colours, 10..60, becomes about 0.3..2),
    which the first test runs needed before the critic could tell anything apart (at /128 its loss
    stayed at the chance level of 2).
    """

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128)) -> None:
        super().__init__()
        from torch.nn.utils.parametrizations import spectral_norm

        layers: list[nn.Module] = []
        c_in = 3
        for c in widths:
            layers += [spectral_norm(nn.Conv2d(c_in, c, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
            c_in = c
        layers.append(spectral_norm(nn.Conv2d(c_in, 1, 3, padding=1)))
        self.net = nn.Sequential(*layers)

    def forward(self, l: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat((l / 50.0 - 1.0, ab / 32.0), 1))


def hinge_losses(critic: PatchCritic, l: torch.Tensor, real_ab: torch.Tensor, fake_ab: torch.Tensor):
    """(the critic's hinge loss, the colourization's adversarial loss) for crops L (N, 1, h, w),
    real and colourized ab (N, 2, h, w).

    The critic learns on the colourized ab detached; the adversarial loss runs the critic with its
    parameters out of the graph. So each loss moves only its own network, and one backward pass
    of their sum trains both.
    """
    critic_loss = F.relu(1.0 - critic(l, real_ab)).mean() + F.relu(1.0 + critic(l, fake_ab.detach())).mean()
    params = list(critic.parameters())
    for p in params:
        p.requires_grad_(False)
    try:
        adv = -critic(l, fake_ab).mean()
    finally:
        for p in params:
            p.requires_grad_(True)
    return critic_loss, adv
