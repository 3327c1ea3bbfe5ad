"""Decode and encode threads joined to the model loop by bounded queues.

PyAV releases the GIL while it decodes and encodes, and so does torch while it computes, so a
producer thread (decode + luma preparation) and a consumer thread (encode + mux) overlap with the
model. The queues are bounded: memory stays flat however long the film, and a slow stage simply
makes the others wait. Errors in a thread are re-raised in the caller's thread; closing a stage
(on error or Ctrl-C) stops its thread promptly without leaving it blocked on a full queue.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, Iterable, Iterator

_END = object()
_POLL_S = 0.1


def _stop_and_join(stop: threading.Event, q: queue.Queue, thread: threading.Thread) -> None:
    """Signal a worker to stop and wait for it, emptying its queue so it never blocks on put/get."""
    stop.set()
    while thread.is_alive():
        try:
            while True:
                q.get_nowait()
        except queue.Empty:
            pass
        thread.join(timeout=_POLL_S)


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class BackgroundIterator(Iterator):
    """Iterate ``make_iter()`` in a daemon thread, ``maxsize`` items ahead of the consumer."""

    def __init__(self, make_iter: Callable[[], Iterable], maxsize: int = 8, name: str = "decode") -> None:
        self._queue: queue.Queue = queue.Queue(maxsize)
        self._stop = threading.Event()
        self._done = False
        self.wait_s = 0.0  # time the consumer spent waiting for items (the stage's visible cost)
        self._thread = threading.Thread(target=self._run, args=(make_iter,), name=name, daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, make_iter) -> None:
        it = None
        try:
            it = iter(make_iter())
            for item in it:
                if not self._put(item):
                    break
            else:
                self._put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer thread
            self._put(_Failure(exc))
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()

    def __next__(self):
        if self._done:
            raise StopIteration
        import time

        t0 = time.perf_counter()
        item = self._queue.get()
        self.wait_s += time.perf_counter() - t0
        if item is _END:
            self._done = True
            self._thread.join()
            raise StopIteration
        if isinstance(item, _Failure):
            self._done = True
            self._thread.join()
            raise item.exc
        return item

    def close(self) -> None:
        """Stop the producer and wait for it (its iterator is closed in its own thread)."""
        self._done = True
        _stop_and_join(self._stop, self._queue, self._thread)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class BackgroundWorker:
    """Call ``fn(*args)`` for each :meth:`put` item in a daemon thread, in order."""

    def __init__(self, fn: Callable, maxsize: int = 8, name: str = "encode") -> None:
        self._fn = fn
        self._queue: queue.Queue = queue.Queue(maxsize)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self.busy_s = 0.0  # time spent inside fn
        self.wait_s = 0.0  # time the producer spent blocked on a full queue
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import time

        while True:
            try:
                item = self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            if item is _END or self._stop.is_set():
                return
            if self._error is not None:
                continue  # drain without working after a failure
            t0 = time.perf_counter()
            try:
                self._fn(*item)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the producer thread
                self._error = exc
            self.busy_s += time.perf_counter() - t0

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, *args) -> None:
        import time

        t0 = time.perf_counter()
        while True:
            self._raise_if_failed()
            if not self._thread.is_alive():
                raise RuntimeError(f"{self._thread.name} thread stopped unexpectedly")
            try:
                self._queue.put(args, timeout=_POLL_S)
                break
            except queue.Full:
                continue
        self.wait_s += time.perf_counter() - t0

    def finish(self) -> None:
        """Wait until every item is processed; re-raise the first error."""
        while self._thread.is_alive():
            try:
                self._queue.put(_END, timeout=_POLL_S)
                break
            except queue.Full:
                self._raise_if_failed()
        self._thread.join()
        self._raise_if_failed()

    def cancel(self) -> None:
        """Stop without processing what is queued; never raises."""
        _stop_and_join(self._stop, self._queue, self._thread)
