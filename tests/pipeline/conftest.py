"""Fixtures: fake models registered in the real registry for one test at a time; a local Ray executor."""

from __future__ import annotations

import pytest
import torch

from colorize.models import registry
from colorize.models.base import ModelInfo
from tests.pipeline.fakes import FakeColorizer


@pytest.fixture(autouse=True)
def _few_threads():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def register_fake(monkeypatch):
    """``register_fake(name, needs_reference=False, diverse=False, **behaviour)`` -> a list that
    receives every FakeColorizer built under that name."""
    registry._ensure_loaded()

    def register(name: str, needs_reference: bool = False, diverse: bool = False, size_multiple: int = 16,
                 render: int = 32, **behaviour):
        info = ModelInfo(name=name, summary=f"test double {name}", paper="-", needs_reference=needs_reference,
                         supports_diverse=diverse, size_multiple=size_multiple, default_render_size=render)
        built: list[FakeColorizer] = []

        def builder(device, dtype, weights=None, diverse: int = 1, **options):
            m = FakeColorizer(info, device, outputs=diverse, **behaviour)
            m.built_dtype = dtype  # what the runner asked for (--precision)
            built.append(m)
            return m

        monkeypatch.setitem(registry._REGISTRY, name, registry._Entry(info, builder))
        return built

    return register


@pytest.fixture(scope="module")
def ray_executor():
    """A Ray executor on a local 2-CPU cluster (skips the test when Ray is not installed)."""
    pytest.importorskip("ray")
    from colorize.pipeline.executors import make_executor

    ex = make_executor("ray", local_cpus=2)
    yield ex
    ex.close()
