"""Scene-cut detection on grey frames.

Film archives are black and white, so the usual HSV content detectors reduce to lightness. A cut
changes both *what* is in the frame (pixel differences) and the lightness *distribution* (the
histogram); camera motion changes the first a lot and the second little, a fade changes both but
slowly. The score mixes the two and a cut needs the score to be high in absolute terms and
against the recent past of the shot (so a busy handheld shot does not cut every frame).
"""

from __future__ import annotations

from collections import deque
from statistics import median

import torch
import torch.nn.functional as F

_THUMB = 48  # long side of the thumbnail compared between frames
_BINS = 32


def _thumb(l: torch.Tensor) -> torch.Tensor:
    """L (1, H, W) 0..100 -> a small float32 CPU thumbnail (h, w) in 0..1."""
    if l.dim() != 3 or l.shape[0] != 1:
        raise ValueError(f"expected L of shape (1, H, W), got {tuple(l.shape)}")
    h, w = l.shape[-2:]
    scale = _THUMB / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    small = F.adaptive_avg_pool2d(l.float().unsqueeze(0), size)[0, 0]
    return (small / 100.0).clamp(0.0, 1.0).cpu()


def frame_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """Cut score between two thumbnails in [0, 1]: 0 identical, 1 nothing in common."""
    hist_a = torch.histc(a, bins=_BINS, min=0.0, max=1.0) / a.numel()
    hist_b = torch.histc(b, bins=_BINS, min=0.0, max=1.0) / b.numel()
    d_hist = 0.5 * float((hist_a - hist_b).abs().sum())
    # A mean lightness difference of a quarter of the range already means unrelated pictures.
    d_pix = min(1.0, 4.0 * float((a - b).abs().mean()))
    return 0.5 * d_hist + 0.5 * d_pix


class SceneCutDetector:
    """Feed grey frames in order; :meth:`is_cut` says whether a frame starts a new shot.

    threshold: absolute score above which a change may be a cut (0..1; 0.3 by default).
    ratio:     the score must also exceed ``ratio`` x the median of the shot's recent scores.
    min_shot:  frames a shot lasts at least (flashes and single bad frames do not cut twice).
    """

    def __init__(self, threshold: float = 0.30, ratio: float = 3.0, min_shot: int = 3) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"scene threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        self.ratio = ratio
        self.min_shot = min_shot
        self.reset()

    def reset(self) -> None:
        self._prev: torch.Tensor | None = None
        self._recent: deque[float] = deque(maxlen=12)
        self._since_cut = 0
        self.last_score = 0.0

    def is_cut(self, l: torch.Tensor) -> bool:
        """``l``: L (1, H, W), 0..100. The first frame is never a cut (it starts the first shot)."""
        thumb = _thumb(l)
        prev, self._prev = self._prev, thumb
        if prev is None or prev.shape != thumb.shape:
            self._since_cut = 1
            return False
        score = frame_difference(prev, thumb)
        self.last_score = score
        baseline = median(self._recent) if self._recent else 0.0
        cut = (
            score >= self.threshold
            and score >= self.ratio * baseline
            and self._since_cut >= self.min_shot
        )
        if cut:
            self._recent.clear()
            self._since_cut = 1
        else:
            self._recent.append(score)
            self._since_cut += 1
        return cut


class ShotStarts:
    """Where shots start: the one rule of the runner, the segment planner and the preview.

    A frame starts a new shot when the scene-cut detector says so or, with references
    (``chooser``: a :class:`~colorize.pipeline.references.ReferenceChooser`), when it enters
    another reference time range. The first frame fed starts the first shot and is not a cut.
    """

    def __init__(self, threshold: float, chooser=None) -> None:
        self.detector = SceneCutDetector(threshold)
        self.chooser = chooser
        self._range_key = None
        self._fed = 0

    def is_cut(self, index: int, seconds: float | None, l: torch.Tensor) -> bool:
        """Frame ``index`` (at ``seconds``, L (1, H, W) at the working size), fed in order."""
        later = self._fed > 0
        self._fed += 1
        cut = self.detector.is_cut(l) and later
        if self.chooser is not None:
            key = self.chooser.range_key(index, seconds)
            cut = cut or (later and key != self._range_key)
            self._range_key = key
        return cut

