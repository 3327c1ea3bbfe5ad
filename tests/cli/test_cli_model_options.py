"""Model-specific flags (``--no-saturation-boost``) and per-file weights provenance in the sidecar."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from colorize.cli.main import cli
from colorize.models import registry
from colorize.models.base import ModelInfo
from colorize.pipeline.config import RunConfig
from colorize.pipeline.errors import UsageError
from colorize.pipeline.runner import Runner
from tests.pipeline.fakes import FakeColorizer, make_clip


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], prog_name="colorize", catch_exceptions=False)


@pytest.fixture
def clip(tmp_path) -> Path:
    return make_clip(tmp_path / "film.mp4", frames=3, audio=False)


@pytest.fixture
def boostable(monkeypatch, tmp_path):
    """A fake model whose builder takes ``saturation_boost`` and is made of two weights files,
    like devc. Returns the list of (saturation_boost, model) built."""
    info = ModelInfo(name="boostable", summary="-", paper="-", size_multiple=16, default_render_size=32)
    files = {}
    for name, payload in (("a.pth", b"first"), ("b.pth", b"second")):
        (tmp_path / name).write_bytes(payload)
        files[name] = {"path": str(tmp_path / name), "sha256": registry.sha256_file(tmp_path / name),
                       "sha256_verified": False}
    built = []

    def builder(device, dtype, weights=None, *, saturation_boost: bool = True):
        m = FakeColorizer(info, device)
        m.weights_files = files
        m.weights_sha256 = hashlib.sha256(b"listing").hexdigest()
        built.append((saturation_boost, m))
        return m

    registry._ensure_loaded()
    monkeypatch.setitem(registry._REGISTRY, "boostable", registry._Entry(info, builder))
    return built


def test_help_lists_the_flag():
    r = invoke("--help")
    assert r.exit_code == 0 and "--no-saturation-boost" in r.stdout


def test_flag_reaches_the_model_and_sidecar_has_every_weights_file(tmp_path, clip, boostable):
    out = tmp_path / "out.mp4"
    r = invoke(clip, "--model", "boostable", "--device", "cpu", "--no-saturation-boost", "-o", out, "-q")
    assert r.exit_code == 0, r.stderr
    assert [b for b, _ in boostable] == [False]
    side = json.loads(Path(str(out) + ".colorize.json").read_text())
    assert side["options"]["extra_model_options"] == {"saturation_boost": False}
    files = side["model"]["weights_files"]
    assert set(files) == {"a.pth", "b.pth"}
    assert files["a.pth"]["sha256"] == hashlib.sha256(b"first").hexdigest()
    assert files["b.pth"]["sha256"] == hashlib.sha256(b"second").hexdigest()
    assert side["model"]["weights_sha256"] == hashlib.sha256(b"listing").hexdigest()


def test_without_the_flag_the_model_keeps_its_default(tmp_path, clip, boostable):
    r = invoke(clip, "--model", "boostable", "--device", "cpu", "-o", tmp_path / "out.mp4", "-q")
    assert r.exit_code == 0, r.stderr
    assert [b for b, _ in boostable] == [True]


def test_flag_with_a_model_that_does_not_take_it_is_a_usage_error(tmp_path, clip, register_fake):
    built = register_fake("plain")  # its builder swallows **options: the flag must still be refused
    out = tmp_path / "out.mp4"
    r = invoke(clip, "--model", "plain", "--device", "cpu", "--no-saturation-boost", "-o", out)
    assert r.exit_code == 2
    assert "colorize: error: model 'plain' does not take --no-saturation-boost" in r.stderr
    assert "Traceback" not in r.stderr
    assert built == [] and not out.exists()


def test_single_file_models_have_no_weights_files_entry(tmp_path, clip, register_fake):
    register_fake("plain")
    out = tmp_path / "out.mp4"
    assert invoke(clip, "--model", "plain", "--device", "cpu", "-o", out, "-q").exit_code == 0
    model = json.loads(Path(str(out) + ".colorize.json").read_text())["model"]
    assert model["weights_sha256"] == "f" * 64 and "weights_files" not in model


def test_registry_declares_devc_options_only_for_devc():
    assert "saturation_boost" in registry.model_options("devc")
    for name in ("lstm", "selfreg", "exemplar"):
        assert "saturation_boost" not in registry.model_options(name)
    with pytest.raises(UsageError, match="does not take --no-saturation-boost"):
        Runner(RunConfig(model="lstm", device="cpu", extra_model_options=(("saturation_boost", False),)))
