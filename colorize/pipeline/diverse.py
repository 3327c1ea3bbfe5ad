"""Diverse candidates (``--diverse N``): picking by saturation and the contact sheet for ``--pick all``.

Lei & Chen (§5) keep, of their diverse outputs, the one with the highest mean HSV saturation. The
runner measures each candidate over the *whole film* (a running mean, so memory stays flat) on
the working-resolution frames, and keeps the winner.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from colorize.color.gamut import limit_chroma
from colorize.color.lab import lab_to_rgb
from colorize.color.saturation import mean_saturation

GAP = 4
THUMB_H = 120
LABEL_H = 22  # the strip above the columns that names them: "input", "#0 sat 0.41", ...


def candidates_rgb(l: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """L (1, H, W) and D candidates ab (D, 2, H, W) -> sRGB (D, 3, H, W) in [0, 1], float32."""
    d = ab.shape[0]
    l4 = l.float().unsqueeze(0).expand(d, -1, -1, -1)
    # Judged as they will be shown: with the gamut limit the writer applies (finish_ab).
    lab = torch.cat((l4, limit_chroma(l4, ab.float())), dim=1)
    return lab_to_rgb(lab)


class SaturationTally:
    """Running mean HSV saturation of each of D candidates over a film."""

    def __init__(self, count: int) -> None:
        self.sums = torch.zeros(count, dtype=torch.float64)
        self.frames = 0

    def add(self, rgb: torch.Tensor) -> None:
        self.sums += mean_saturation(rgb).cpu()
        self.frames += 1

    @property
    def means(self) -> list[float]:
        n = max(1, self.frames)
        return [float(s) / n for s in self.sums]

    def best(self) -> int:
        return int(torch.argmax(self.sums).item())


def sheet_indices(frames: int | None, rows: int) -> list[int]:
    """Frames shown on the contact sheet: ``rows`` evenly spread ones (the first few if unknown)."""
    if rows <= 0:
        return []
    if not frames:
        return [0, 12, 48, 120, 240, 480][:rows]
    rows = min(rows, frames)
    return sorted({min(frames - 1, int((i + 0.5) * frames / rows)) for i in range(rows)})


class ContactSheet:
    """Collects a few frames (grey input + every candidate) and lays them out side by side."""

    def __init__(self, indices: list[int]) -> None:
        self.wanted = set(indices)
        self.rows: list[tuple[int, np.ndarray]] = []
        self.tile_w = 0

    def wants(self, index: int) -> bool:
        return index in self.wanted

    def add(self, index: int, l: torch.Tensor, rgb: torch.Tensor) -> None:
        """``l`` (1, H, W) and the candidates ``rgb`` (D, 3, H, W), both in display orientation."""
        grey = (l.float() / 100.0).clamp(0, 1).expand(3, -1, -1).unsqueeze(0)
        tiles = torch.cat((grey.to(rgb.device), rgb.float()), dim=0)
        h, w = tiles.shape[-2:]
        size = (THUMB_H, max(1, round(w * THUMB_H / h)))
        tiles = F.interpolate(tiles, size=size, mode="area") if (h, w) != size else tiles
        tiles = (tiles.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
        self.tile_w = size[1]
        gap = np.full((size[0], GAP, 3), 255, np.uint8)
        parts: list[np.ndarray] = []
        for t in tiles:
            parts += [t, gap]
        self.rows.append((index, np.concatenate(parts[:-1], axis=1)))

    def labels(self, saturations: list[float]) -> np.ndarray:
        """The strip above the columns: "input", then each candidate's number and mean saturation
        (the figure ``--pick saturation`` compares), so the sheet says which file is which."""
        import cv2

        texts = ["input"] + [f"#{i}  sat {s:.3f}" for i, s in enumerate(saturations)]
        strip = np.full((LABEL_H, len(texts) * (self.tile_w + GAP) - GAP, 3), 255, np.uint8)
        for i, text in enumerate(texts):
            scale = 0.45
            while scale > 0.25 and cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] > self.tile_w - 4:
                scale -= 0.05
            cv2.putText(strip, text, (i * (self.tile_w + GAP) + 2, LABEL_H - 7), cv2.FONT_HERSHEY_SIMPLEX, scale,
                        (0, 0, 0), 1, cv2.LINE_AA)
        return strip

    def png(self, saturations: list[float] | None = None) -> bytes | None:
        """The sheet as PNG bytes; with ``saturations`` (one per candidate) a label strip on top."""
        if not self.rows:
            return None
        import cv2

        rows = [r for _, r in sorted(self.rows, key=lambda x: x[0])]
        if saturations is not None:
            rows.insert(0, self.labels(saturations))
        width = max(r.shape[1] for r in rows)
        padded = []
        for r in rows:
            if r.shape[1] < width:
                r = np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255)
            padded += [r, np.full((GAP, width, 3), 255, np.uint8)]
        sheet = np.concatenate(padded[:-1], axis=0)
        ok, buf = cv2.imencode(".png", np.ascontiguousarray(sheet[..., ::-1]))
        if not ok:
            raise RuntimeError("could not encode the contact sheet PNG")
        return buf.tobytes()

    def save(self, path: Path, saturations: list[float] | None = None) -> bool:
        from colorize.pipeline.sidecar import atomic_write_bytes

        data = self.png(saturations)
        if data is None:
            return False
        atomic_write_bytes(path, data)
        return True
