"""Overlap a stream model's frozen backbone with the rest of the model.

On a CPU where torch runs one intra-op thread (``colorize`` on two cores leaves the other core to
the decode and encode threads, which use only part of it), the backbone of frame t can run in a
worker thread while the calling thread runs the rest of the model on frame t-1. Each frame then
comes back one push later; what is computed, and so every colour, is the same.
"""

from __future__ import annotations

import os
import weakref
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

import torch


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def spare_core(device: torch.device) -> bool:
    """True on a CPU where torch runs one intra-op thread and another core is usable. With more
    torch threads the cores are in use already, and two threads each starting OpenMP teams would
    oversubscribe them; on a GPU the work is asynchronous anyway."""
    if torch.device(device).type != "cpu" or torch.get_num_threads() != 1:
        return False
    return usable_cores() > 1


def _run(fn: Callable, args: tuple) -> Any:
    with torch.inference_mode():  # thread-local: the worker needs its own
        return fn(*args)


class FeaturesAhead:
    """Computes ``fn(*args)`` for the newest item in a worker thread (``enabled``) or at once.

    :meth:`push` returns the ``(item, result)`` pairs that are ready, oldest first: all but the
    newest when enabled, the newest itself when not. ``enabled=None``: :func:`spare_core`."""

    def __init__(self, device: torch.device, enabled: bool | None = None, name: str = "backbone") -> None:
        self.enabled = spare_core(device) if enabled is None else bool(enabled)
        self._queued: deque[tuple[Any, Future]] = deque()
        self._pool = None
        if self.enabled:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix=name)
            weakref.finalize(self, self._pool.shutdown, wait=False)

    def push(self, item: Any, fn: Callable, *args) -> list[tuple[Any, Any]]:
        if self._pool is None:
            return [(item, _run(fn, args))]
        self._queued.append((item, self._pool.submit(_run, fn, args)))
        out = []
        while len(self._queued) > 1:  # the newest item's work runs meanwhile
            out.append(self._take())
        return out

    def drain(self) -> list[tuple[Any, Any]]:
        """Every held item with its result (a worker's error is raised here)."""
        out = []
        while self._queued:
            out.append(self._take())
        return out

    def clear(self) -> None:
        """Drop the held items (after the worker has finished with them)."""
        while self._queued:
            self._queued.popleft()[1].exception()

    def _take(self) -> tuple[Any, Any]:
        item, future = self._queued.popleft()
        return item, future.result()
