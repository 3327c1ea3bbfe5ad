"""The one small interface between the pipeline and every model family.

A :class:`StreamColorizer` is a stateful stream transformer. The runner pushes grey frames one by
one, at the model's working resolution, and receives ``(frame_index, ab)`` pairs, possibly later
than it pushed them (a look-ahead for a refine pass) but always in increasing index order and
exactly once per pushed frame after :meth:`flush`. The runner never needs to know which family it
drives; any batching for speed happens inside.

Tensor contract (all on ``self.device``, float32 at the boundary whatever the compute dtype):
    push(index, l):  l  (1, H, W), L in [0, 100]; H and W multiples of ``size_multiple``.
    returns:         ab (D, 2, H, W), roughly [-128, 127]; D = ``num_outputs`` (diverse candidates,
                     1 for a single colouring).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class ModelInfo:
    """Static description of a registered model, as shown by ``colorize models``."""

    name: str
    summary: str
    paper: str
    needs_reference: bool = False
    supports_diverse: bool = False
    weights_file: str | None = None  # file name inside weights/, or None for user-supplied weights
    size_multiple: int = 32
    default_render_size: int = 256
    extra: dict = field(default_factory=dict)


class StreamColorizer(ABC):
    """Grey frames in, chroma out. See the module docstring for the contract."""

    info: ModelInfo
    device: torch.device
    num_outputs: int = 1
    weights_sha256: str | None = None

    @property
    def size_multiple(self) -> int:
        return self.info.size_multiple

    @abstractmethod
    def push(self, index: int, l: torch.Tensor) -> list[tuple[int, torch.Tensor]]:
        """Feed frame ``index`` (L, (1, H, W)); return the frames whose chroma is now ready."""

    @abstractmethod
    def flush(self) -> list[tuple[int, torch.Tensor]]:
        """End of stream (or of a shot): return every frame still held back."""

    @abstractmethod
    def reset(self) -> None:
        """Forget all temporal state (scene cut or new file). Call :meth:`flush` first."""

    def set_reference(self, ref_lab: torch.Tensor) -> None:
        """Exemplar models: the colour reference as Lab (1, 3, H, W), L 0..100, ab -128..127."""
        raise TypeError(f"model {self.info.name!r} does not take a reference image")

    def reference_score(self, l: torch.Tensor, ref_lab: torch.Tensor) -> float:
        """Exemplar models: how well a reference matches a grey frame (higher is better)."""
        raise TypeError(f"model {self.info.name!r} does not take a reference image")
