"""Executors: local and Ray map a function over arguments; Ray is optional and says how to get it."""

from __future__ import annotations

import operator
import sys

import pytest

from colorize.pipeline.errors import UsageError
from colorize.pipeline.executors import LocalExecutor, make_executor, run_all


def test_local_runs_in_order():
    ex = make_executor("local")
    assert isinstance(ex, LocalExecutor)
    assert list(ex.map(operator.mul, [(2, 3), (4, 5)])) == [(0, 6), (1, 20)]
    with pytest.raises(ZeroDivisionError):
        run_all(ex, operator.truediv, [(1, 0)])


def test_unknown_executor_is_a_usage_error():
    with pytest.raises(UsageError, match="local, ray"):
        make_executor("dask")


def test_ray_missing_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(UsageError, match=r'pip install "colorize\[ray\]"'):
        make_executor("ray")


def test_ray_maps_on_a_local_cluster_and_reraises_task_errors(ray_executor):
    assert run_all(ray_executor, operator.mul, [(i, 3) for i in range(5)]) == [0, 3, 6, 9, 12]
    with pytest.raises(ZeroDivisionError):
        run_all(ray_executor, operator.truediv, [(1, 1), (1, 0)])
