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
