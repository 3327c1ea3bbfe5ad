"""Executors: where independent pieces of work (the segments of a film) run.

* ``local`` runs them one after another in this process (the default).
* ``ray`` sends each to a Ray task: on the cluster named by ``RAY_ADDRESS`` (as ``ray.init()``
  does), or on a local Ray instance started for the run. Ray is an optional extra:
  ``pip install "colorize[ray]"``; without it :func:`make_executor` raises a :class:`UsageError`
  that says so.

An executor only maps a picklable top-level function over picklable arguments and yields
``(position, result)`` as results arrive (any order); the first failure is raised in the caller,
with the task's own exception type where Ray keeps it. It knows nothing of films or models.
"""

from __future__ import annotations

import os
from typing import Callable, Iterable, Iterator, Sequence

from colorize.pipeline.errors import UsageError

EXECUTORS = ("local", "ray")
RAY_INSTALL_HINT = 'pip install "colorize[ray]"  (or: pip install ray)'


class LocalExecutor:
    """Runs every call in this process, in order."""

    name = "local"

    def map(self, fn: Callable, args: Sequence[tuple]) -> Iterator[tuple[int, object]]:
        for i, a in enumerate(args):
            yield i, fn(*a)

    def close(self) -> None:
        pass


class RayExecutor:
    """Runs every call as a Ray task (``task_cpus``/``task_gpus`` each), connecting or starting Ray.

    ``address``: a cluster address; None = ``RAY_ADDRESS`` if set, else a local instance with
    ``local_cpus`` CPUs (None: all). A Ray session this executor started is shut down by
    :meth:`close`; one that was already running (``ray.init`` by the caller) is left alone.
    """

    name = "ray"

    def __init__(self, address: str | None = None, task_cpus: float = 1, task_gpus: float = 0,
                 local_cpus: int | None = None, env: dict[str, str] | None = None, quiet: bool = True) -> None:
        ray = _import_ray()
        self._ray = ray
        self.task_cpus = task_cpus
        self.task_gpus = task_gpus
        self._started = False
        if not ray.is_initialized():
            address = address or os.environ.get("RAY_ADDRESS") or None
            import logging

            kwargs: dict = {"include_dashboard": False, "log_to_driver": not quiet,
                            "logging_level": logging.ERROR if quiet else logging.INFO}
            if address is None and local_cpus is not None:
                kwargs["num_cpus"] = local_cpus
            if env:
                kwargs["runtime_env"] = {"env_vars": dict(env)}
            ray.init(address=address, **kwargs)
            self._started = True

    def map(self, fn: Callable, args: Sequence[tuple]) -> Iterator[tuple[int, object]]:
        ray = self._ray
        # Retried when a worker or node dies (not on the task's own errors): our tasks write their
        # results by atomic rename, so running one twice is harmless.
        cpus = fit_to_nodes(self.task_cpus, _alive_node_cpus(ray))
        remote = ray.remote(num_cpus=cpus, num_gpus=self.task_gpus, max_retries=2)(_call)
        refs = [remote.remote(fn, *a) for a in args]
        position = {r: i for i, r in enumerate(refs)}
        pending = list(refs)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                for ref in ready:
                    try:
                        value = ray.get(ref)
                    except ray.exceptions.RayTaskError as exc:  # the task's own error, re-raised here
                        cause = exc.as_instanceof_cause() if hasattr(exc, "as_instanceof_cause") else exc
                        raise cause from None
                    yield position[ref], value
        finally:
            for ref in pending:  # an error or Ctrl-C: do not leave the cluster working for nobody
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 - best effort
                    pass

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()
            self._started = False


def fit_to_nodes(task_cpus: float, node_cpus: Iterable[float]) -> float:
    """The CPUs to reserve for a task: ``task_cpus``, or the largest node's CPUs where no node has
    that many. Ray never schedules a task that asks for more CPUs than any node has: it would wait
    for ever. Capped, it runs on the largest node with what that node has. Unknown nodes:
    ``task_cpus``."""
    largest = max((float(c) for c in node_cpus), default=None)
    if largest is None or largest <= 0:
        return task_cpus
    return min(task_cpus, largest)


def _alive_node_cpus(ray) -> list[float]:
    """CPUs of each node of the cluster that is alive now."""
    try:
        return [n.get("Resources", {}).get("CPU", 0.0) for n in ray.nodes() if n.get("Alive")]
    except Exception:  # noqa: BLE001 - an unknown cluster keeps the reservation asked for
        return []


def _call(fn: Callable, *args):
    """The Ray task: any callable (builtins too) shipped as an argument."""
    return fn(*args)


def _import_ray():
    try:
        import ray
    except ImportError as exc:
        raise UsageError(f"--executor ray needs Ray, which is not installed: {RAY_INSTALL_HINT}") from exc
    return ray


def ray_available() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def make_executor(name: str, **options) -> LocalExecutor | RayExecutor:
    """``"local"`` or ``"ray"`` (options go to :class:`RayExecutor`); anything else is a usage error."""
    if name == "local":
        return LocalExecutor()
    if name == "ray":
        return RayExecutor(**options)
    raise UsageError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}")


def run_all(executor, fn: Callable, args: Iterable[tuple]) -> list:
    """Every result, in the order of ``args``."""
    args = list(args)
    out: list = [None] * len(args)
    for i, value in executor.map(fn, args):
        out[i] = value
    return out
