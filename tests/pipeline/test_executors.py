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


def test_fit_to_nodes_caps_a_reservation_no_node_could_give():
    from colorize.pipeline.executors import fit_to_nodes

    assert fit_to_nodes(2, [1.0, 1.0]) == 1  # 1-CPU nodes: the task still runs
    assert fit_to_nodes(2, [1.0, 8.0]) == 2  # one node has room: the reservation stays
    assert fit_to_nodes(3, [2.0]) == 2
    assert fit_to_nodes(2, []) == 2  # nothing known: as asked
    assert fit_to_nodes(0.5, [4.0]) == 0.5


def test_ray_task_asking_more_cpus_than_any_node_has_still_runs(ray_executor):
    from colorize.pipeline.executors import RayExecutor, _alive_node_cpus

    assert max(_alive_node_cpus(ray_executor._ray)) == 2  # the fixture's local 2-CPU cluster
    # Uncapped, Ray would keep a 3-CPU task pending for ever on this cluster.
    wide = RayExecutor(task_cpus=3)  # joins the running cluster
    assert run_all(wide, operator.mul, [(i, 2) for i in range(3)]) == [0, 2, 4]
