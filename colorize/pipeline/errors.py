"""Errors the pipeline raises; the CLI maps them to messages and exit codes.

* :class:`UsageError` (and subclasses): the command line cannot work as given (exit code 2):
  unknown device, missing reference, output equal to the input, a model that does not take
  references, ...
* ``colorize.io.MediaError``: one input cannot be processed (exit code 1, other inputs go on).
* :class:`ModelError`: the model could not be built or misbehaved (weights missing or corrupt).
"""

from __future__ import annotations


class UsageError(ValueError):
    """The options cannot work together or name things that do not exist."""


class ModelError(RuntimeError):
    """Building or running the model failed."""


def take_pending(pending: dict, index: int, ab, candidates: int, model: str):
    """The pending item of frame ``index`` that a model just returned with chroma ``ab``, after
    checking the model kept the stream contract (each pushed frame once, ab (D, 2, H, W))."""
    item = pending.pop(index, None)
    if item is None:
        raise ModelError(f"model {model!r} returned frame {index}, which is not pending")
    if ab.dim() != 4 or ab.shape[0] != candidates or ab.shape[1] != 2:
        raise ModelError(f"model {model!r} returned ab of shape {tuple(ab.shape)}, expected ({candidates}, 2, H, W)")
    return item
