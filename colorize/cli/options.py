"""Options shared by several commands, defined once (choices come from the model registry)."""

from __future__ import annotations

import click

from colorize.pipeline.config import DEFAULT_AUTO_MODEL, DEFAULT_REFERENCE_MODEL, PRECISIONS

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = (
    "Exit codes: 0 every input done (or skipped because its output exists); "
    "1 some inputs failed (the others were still processed); "
    "2 bad usage (unknown option, model or device, missing reference, output equal to input); "
    "130 interrupted (Ctrl-C or SIGTERM; no partial output is left behind)."
)


class ModelChoice(click.Choice):
    """``click.Choice`` over the registered models, read from the registry when used, so
    ``--help`` and validation always show the real list."""

    name = "model"

    def __init__(self) -> None:
        super().__init__((), case_sensitive=True)

    @property
    def choices(self):  # type: ignore[override]
        from colorize.models.registry import list_models

        return tuple(list_models())

    @choices.setter
    def choices(self, value) -> None:  # click's __init__ assigns it; the registry is the truth
        pass

    def convert(self, value, param, ctx):
        if value in self.choices:
            return value
        import difflib

        close = difflib.get_close_matches(str(value), self.choices, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}? " if close else ""
        self.fail(f"unknown model {value!r}; {hint}(choose from {', '.join(self.choices)})", param, ctx)


class TrainableModelChoice(ModelChoice):
    """The registered models that ``colorize train`` can train: a family module of ours trains when
    it defines ``FAMILY`` (devc, the official networks run as released, does not). Reading that
    attribute imports no training code."""

    @property
    def choices(self):  # type: ignore[override]
        import importlib.util

        from colorize.models.registry import list_models

        def trainable(name: str) -> bool:
            module = f"colorize.models.{name}"
            try:
                found = importlib.util.find_spec(module) is not None
            except (ImportError, ValueError):
                found = False
            # A model from elsewhere (a plugin) is left for the trainer to accept or refuse.
            return not found or getattr(importlib.import_module(module), "FAMILY", None) is not None

        return tuple(n for n in list_models() if trainable(n))

    @choices.setter
    def choices(self, value) -> None:
        pass


def model_option(required: bool = False, help: str | None = None, trainable: bool = False):
    return click.option(
        "--model", "-m", "model", type=TrainableModelChoice() if trainable else ModelChoice(),
        required=required, default=None,
        help=help or (
            f"Model to run. Default: {DEFAULT_AUTO_MODEL!r} (automatic), or "
            f"{DEFAULT_REFERENCE_MODEL!r} when --ref is given. `colorize models` lists them."
        ),
    )


def weights_option(f):
    return click.option(
        "--weights", type=click.Path(path_type=__import__("pathlib").Path), default=None,
        help="Weights file (or folder, for models made of several files) instead of the shipped ones.",
    )(f)


def device_option(f=None, *, help: str = "Compute device; auto = CUDA, then Apple MPS, then CPU. GPUs run in "
                                          "half precision unless --precision says otherwise."):
    option = click.option("--device", default="auto", show_default=True, metavar="auto|cpu|cuda[:N]|mps", help=help)
    return option(f) if f is not None else option


def precision_option(f):
    return click.option(
        "--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True,
        help="Network arithmetic; auto = half on GPUs, fp32 on CPU. bf16 on a CPU with AMX/AVX512-BF16 "
             "runs devc about 1.7x faster (not bit-faithful); the small models do not gain.",
    )(f)


def json_option(help: str):
    return click.option("--json", "as_json", is_flag=True, help=help)


def debug_option(f):
    return click.option("--debug", is_flag=True, help="Show full tracebacks for errors.")(f)


def saturation_boost_option(f):
    """``--no-saturation-boost`` -> the model option ``saturation_boost=False`` (devc only)."""
    return click.option(
        "--no-saturation-boost", "no_saturation_boost", is_flag=True,
        help="devc: leave out the official x1.25 saturation boost of the predicted colours "
             "(models without that option refuse the flag).",
    )(f)


def model_options_from_flags(*, no_saturation_boost: bool = False) -> tuple[tuple[str, object], ...]:
    """The ``RunConfig.extra_model_options`` that the model-specific flags ask for (only those set)."""
    opts: list[tuple[str, object]] = []
    if no_saturation_boost:
        opts.append(("saturation_boost", False))
    return tuple(opts)
