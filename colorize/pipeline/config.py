"""The runner's options: one typed, frozen dataclass built by the CLI (or by library callers).

Everything that changes what a run produces lives here, so the provenance sidecar can record it
verbatim (:meth:`RunConfig.as_dict`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

# The automatic model used when neither --model nor --ref is given. One constant, chosen by
# measurement in the automatic-models work (see the README); the CLI help reads it from here.
DEFAULT_AUTO_MODEL = "selfreg"
# The model used when --ref is given and --model is not.
DEFAULT_REFERENCE_MODEL = "exemplar"

PICK_CHOICES = ("saturation", "all")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")  # see colorize.pipeline.device.compute_dtype


def default_model_name(has_reference: bool) -> str:
    return DEFAULT_REFERENCE_MODEL if has_reference else DEFAULT_AUTO_MODEL


@dataclass(frozen=True)
class RunConfig:
    """What to run and how. Paths are kept as given; the runner resolves them.

    model:          registry name (``colorize.models.list_models()``).
    weights:        a user weights file or folder; None = the shipped weights.
    references:     ``--ref`` specs as given (file, folder, or ``file@start-end``).
    device:         "auto", "cpu", "cuda", "cuda:N" or "mps".
    precision:      "auto" (half on GPUs, float32 on CPU), "fp32", "fp16" or "bf16".
    render_size:    short side of the model's working frame in pixels; None = the model's default.
    codec/crf/preset: encoder settings; codec None = the writer's default for the container.
    diverse:        number of candidate colourings to compute (models with ``supports_diverse``).
    pick:           "saturation" keeps the most saturated candidate, "all" writes every one.
    refine_passes:  refinement passes for models that have one; None = the model's default.
    overwrite:      replace existing outputs instead of skipping the input.
    scene_threshold: sensitivity of the scene-cut detector (see ``scenes.SceneCutDetector``).
    segment_frames: a video is processed as segments of at most this many frames, cut where shots
                    start (long shots split), each resumable (``colorize.pipeline.segments``);
                    0 = in one piece. ``--diverse`` runs are always in one piece.
    warmup_frames:  frames colourized and discarded before a segment that starts inside a shot.
    extra_model_options: further ``create_model`` options as (name, value) pairs, e.g.
                    ``(("saturation_boost", False),)`` for devc; the runner refuses a name that the
                    model's builder does not declare (``registry.model_options``).
    """

    model: str = DEFAULT_AUTO_MODEL
    weights: Path | None = None
    references: tuple[str, ...] = ()
    device: str = "auto"
    precision: str = "auto"
    render_size: int | None = None
    codec: str | None = None
    crf: int | None = None
    preset: str | None = None
    diverse: int = 1
    pick: str = "saturation"
    refine_passes: int | None = None
    overwrite: bool = False
    scene_threshold: float = 0.30
    queue_size: int = 8
    contact_sheet_frames: int = 4
    segment_frames: int = 2000
    warmup_frames: int = 16
    extra_model_options: tuple[tuple[str, object], ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.diverse < 1:
            raise ValueError(f"diverse must be >= 1, got {self.diverse}")
        if self.pick not in PICK_CHOICES:
            raise ValueError(f"pick must be one of {PICK_CHOICES}, got {self.pick!r}")
        if self.pick == "all" and self.diverse < 2:
            raise ValueError("pick 'all' needs diverse >= 2: a single colouring has no candidates to keep")
        if self.render_size is not None and self.render_size < 16:
            raise ValueError(f"render size must be at least 16 pixels, got {self.render_size}")
        if self.refine_passes is not None and self.refine_passes < 0:
            raise ValueError(f"refine passes must be >= 0, got {self.refine_passes}")
        if self.segment_frames < 0 or self.warmup_frames < 0:
            raise ValueError("segment_frames and warmup_frames must be >= 0")
        if self.queue_size < 1:
            raise ValueError("queue_size must be >= 1")

    def model_options(self) -> dict:
        """Keyword options for ``create_model`` beyond device/dtype/weights (only those set)."""
        opts: dict = {}
        if self.diverse > 1:
            opts["diverse"] = self.diverse
        if self.refine_passes is not None:
            opts["refine_passes"] = self.refine_passes
        opts.update(dict(self.extra_model_options))
        return opts

    def as_dict(self) -> dict:
        d = asdict(self)
        d["weights"] = str(self.weights) if self.weights is not None else None
        d["references"] = list(self.references)
        d["extra_model_options"] = {k: v for k, v in self.extra_model_options}
        return d
