import threading
import time

import pytest

from colorize.pipeline.stages import BackgroundIterator, BackgroundWorker


def test_iterator_yields_in_order_and_bounded():
    produced = []

    def gen():
        for i in range(50):
            produced.append(i)
            yield i

    it = BackgroundIterator(gen, maxsize=3)
    time.sleep(0.2)
    assert len(produced) <= 3 + 2  # the queue plus the item being put, not the whole stream
    assert list(it) == list(range(50))


def test_iterator_reraises_and_close_stops_producer():
    def bad():
        yield 1
        raise ValueError("decode failed")

    it = BackgroundIterator(bad, maxsize=2)
    assert next(it) == 1
    with pytest.raises(ValueError, match="decode failed"):
        next(it)

    closed = threading.Event()

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    it = BackgroundIterator(endless, maxsize=2)
    next(it)
    it.close()
    assert closed.wait(2.0)  # the generator was closed in its own thread


def test_worker_order_error_and_cancel():
    seen = []
    w = BackgroundWorker(seen.append, maxsize=2)
    for i in range(20):
        w.put(i)
    w.finish()
    assert seen == list(range(20))

    def boom(x):
        if x == 3:
            raise OSError("disk full")

    w = BackgroundWorker(boom, maxsize=2)
    with pytest.raises(OSError, match="disk full"):
        for i in range(100):
            w.put(i)
        w.finish()

    slow = BackgroundWorker(lambda x: time.sleep(0.05), maxsize=2)
    for i in range(3):
        slow.put(i)
    t0 = time.perf_counter()
    slow.cancel()
    assert time.perf_counter() - t0 < 1.0
